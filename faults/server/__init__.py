"""Embedded Toxiproxy-compatible fault server (Toxiproxy 2.x HTTP API, same toxics).

Run it::

    python -m faults.server --host 127.0.0.1 --port 0 [--config config/proxies.json] [--seed N]

Once the API socket is bound it prints exactly one line on stdout,
``listening on http://HOST:PORT`` (the real port, also with ``--port 0``); everything else
goes to stderr. SIGINT/SIGTERM close every listener and connection and exit 0. Exit 2: bad
arguments or a bad ``--config`` file (one line on stderr); exit 1: a port cannot be bound.
In-process use: ``faults.server.app.serve(Options(...), ready=..., stop=asyncio.Event())``.

Layout (one job per module):

- ``app``/``__main__``: CLI, uvloop, uvicorn serving the Starlette ``api`` in the same loop.
- ``api``: routes, Toxiproxy's status codes and messages; ``model`` validates bodies at the
  edge (every malformed input is a 400 ``{"error", "status"}``); ``collection`` holds the
  proxies (create/update/populate/reset); ``proxy`` a listener, its connections and chains.
- ``connection``: one accepted client socket plus its upstream socket, two ``link.Direction``s.
- ``metrics``: a Prometheus collector that reads plain integer counters at scrape time
  (``toxiproxy_proxy_{received,sent}_bytes_total{direction,listener,proxy,upstream}``,
  ``toxiproxy_proxy_open_connections{proxy}``, ``toxiproxy_proxy_active_toxics{proxy}``).

The modules form layers, each importing only those below it (an import-linter contract in
pyproject.toml checks it): ``__main__``, ``app``, ``api``, ``metrics``, ``collection``,
``proxy``, ``connection``, ``link``, ``model``, ``toxics``, then ``pipeline``, ``native`` and
``errors``. Where a lower module calls back up, it types the caller with a Protocol of its
own: ``connection.Owner`` is what a connection needs of its proxy, ``link.Owner`` what a
direction needs of its connection, ``pipeline.Flow`` what a queue reports to; a toxic's
``Stub`` gets the connection's reset as a callable.

Data path. With no toxic applied to a direction (the common case) the source protocol's
``data_received`` writes straight into the destination transport: no task, no queue, no
copy; flow control pauses the source when the destination's buffer passes 256 KiB and
resumes it on drain; TCP_NODELAY on both sockets. When a toxic applies, that direction
switches to a pipeline: source -> queue -> toxic stage -> queue -> ... -> writer task.
A queue pops an item only after its reader wakes and every stage keeps its current chunk
in ``Stub.pending``, so when the chain changes (toxic added, updated, removed) the stages
are cancelled, what they held is collected oldest first and fed to the new chain (or
written out at once when the chain becomes empty). That is synchronous, so a change under
load is bounded and loses or reorders nothing. TCP half-close is passed through.

Native data plane. Per-message Python callbacks cost too much CPU when the client, the
service and the proxy share two cores, so by default a direction with an empty chain is
handed to ``native`` (the ``_splice`` C extension): one thread without the GIL forwards
socket -> pipe -> socket with splice(2) and reports EOF/errors back to the loop. Adding a
toxic detaches that direction (bytes already in the pipe are fed to the pipeline first);
removing the last one hands it back once the Python side has flushed. ``--data-plane
python`` (or ``FAULTS_DATA_PLANE=python``) forces the pure-Python path, which is also the
fallback when the extension was not built.

Toxics. ``toxics/<name>.py`` holds a dataclass whose int fields are the JSON attributes and
one coroutine ``pipe(stub)``; ``@toxic("name")`` registers it and ``toxics/__init__`` imports
every module of the package, so adding a toxic touches nothing else. Optional ability:
``closes_on_removal = True`` (timeout). Per-connection state lives in ``stub.state`` and
survives chain rebuilds (limit_data's count). Toxicity is drawn per connection and per
direction whenever that direction's chain changes; with ``--seed N`` every draw comes from
``random.Random(f"{N}/{proxy}/{connection ordinal}/{direction}")``, and each toxic's own
randomness (jitter, slice sizes) from a generator that also includes the toxic's name.
"""
