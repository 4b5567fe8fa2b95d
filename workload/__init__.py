"""The Locust plumbing of the Archivist workloads; the locustfiles themselves are in locustfiles/.

One idea per module:

- ``users``: ``ArchivistUser``, the base of every workload user, and the area tags;
  importing it registers the plug-ins below, in the order their listeners must run;
- ``client``: the API client a user acts through (routes, auth, request naming);
- ``judging``: what an acceptable answer is, and the outcomes (skipped, rate limited,
  known defect, workflow failed);
- ``settings``: config/workload.toml, the seeded accounts, the run's route profile;
- ``ledger``: every acknowledged write, per process, for the audit;
- ``shipping`` (with the master's ``inbox``): a distributed run's worker rows and ledger
  sent to the master's run folder over Locust's channel;
- ``tally`` and ``coverage_wiring``: nothing silent (every task run counted; the run's
  tally judged at quit), on the pure rules of ``coverage``;
- ``options``: the workload's command-line options and the init checks made from them;
- ``fakes``: made-up VODs;
- ``capture`` (with its Parquet ``schema``): the plug-in that records every request;
- ``routes``, ``tomlconfig``: route profiles and config files (no Locust: the analysis
  and the experiment runner read them too);
- ``target``, ``source_address``, ``cookies``, ``links``: where the load goes, from which
  addresses, the cookie jar, bytes per fault link;
- ``shapes`` and ``stages``: the ``--shape`` load shapes.

This package imports nothing by itself, so reading ``workload.routes`` or
``workload.schema`` does not import Locust (which monkey-patches the process with gevent).
"""
