"""Resilience experiments: a load, faults on a timeline, a hypothesis, an audit, a verdict.

The engine behind `python -m experiments` (experiments.cli). It drives the fault server
(faults), starts stacks (testbed), runs Locust workloads (locustfiles) and reads runs
with analysis; none of those imports it (faults/__main__.py, the old entry point, aside).
"""
