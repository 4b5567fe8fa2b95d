"""The run's coverage: every worker's tally to the master, and the judgement at quit.

At quit, the master (or the single process) lists what was skipped or never exercised,
records the tally in meta.json, and ends the run non-zero when a user class or a route
the selected tasks declare stayed silent (``--allow-silent``: only warn).
"""

from __future__ import annotations

import logging
from typing import Any

from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from workload.capture import record_in_meta, run_dir_of
from workload.coverage import Coverage, findings, summary_lines
from workload.settings import profile_of
from workload.tally import COVERAGE

log = logging.getLogger(__name__)

_worker_reports: dict[str, dict[str, Any]] = {}


def _is_archivist_user(cls: Any) -> bool:
    # Imported here: workload.users imports this module (to register it) before it
    # defines the class.
    from workload.users import ArchivistUser

    return isinstance(cls, type) and issubclass(cls, ArchivistUser)


def _task_passes(task: Any, tags: set[str] | None, exclude: set[str] | None) -> bool:
    found = set(getattr(task, "locust_tag_set", set()))
    return (tags is None or bool(found & tags)) and not (exclude and found & exclude)


def _declared_and_selected(environment: Environment) -> tuple[dict[str, frozenset[str]], set[str]]:
    """Routes each loaded task declares, and the tasks this run selected (classes, -T, -E)."""
    opts = environment.parsed_options
    tags = set(opts.tags) if opts is not None and getattr(opts, "tags", None) else None
    exclude = (
        set(opts.exclude_tags) if opts is not None and getattr(opts, "exclude_tags", None) else None
    )
    loaded = _loaded_classes(environment)
    chosen = {c.__name__ for c in environment.user_classes}
    declared: dict[str, frozenset[str]] = {}
    selected: set[str] = set()
    for cls in loaded:
        if not _is_archivist_user(cls):
            continue
        for t in _ORIGINAL_TASKS.get(cls, cls.tasks):
            if hasattr(t, "tasks"):
                continue
            key = f"{cls.__name__}.{t.__name__}"
            declared[key] = frozenset(getattr(t, "locust_routes", ()))
            if cls.__name__ in chosen and _task_passes(t, tags, exclude):
                selected.add(key)
    return declared, selected


_ORIGINAL_TASKS: dict[type, list[Any]] = {}


def _loaded_classes(environment: Environment) -> list[Any]:
    """Every user class of the locustfiles (not only those chosen on the command line)."""
    available: dict[str, Any] = dict(environment.available_user_classes or {})
    return list(available.values()) or list(environment.user_classes)


@events.init.add_listener
def _remember_tasks(environment: Environment, **_: Any) -> None:
    """The task lists before Locust filters them by tag (it edits the classes in place)."""
    for cls in _loaded_classes(environment):
        if _is_archivist_user(cls):
            _ORIGINAL_TASKS.setdefault(cls, list(cls.tasks))


@events.report_to_master.add_listener
def _report_coverage(client_id: str, data: dict[str, Any], **_: Any) -> None:
    data["archivist_coverage"] = COVERAGE.to_json()  # cumulative: the last report wins


@events.worker_report.add_listener
def _collect_coverage(client_id: str, data: dict[str, Any], **_: Any) -> None:
    if "archivist_coverage" in data:
        _worker_reports[client_id] = data["archivist_coverage"]


def run_coverage(environment: Environment) -> tuple[Coverage, Any]:
    """This run's tally (every worker's, on a master) and its findings."""
    if isinstance(environment.runner, MasterRunner):
        coverage = Coverage.merged(_worker_reports.values())
    else:
        coverage = COVERAGE
    declared, selected = _declared_and_selected(environment)
    profile = profile_of(environment)
    found = findings(coverage, profile.name, profile.routes, declared, selected)
    return coverage, found


@events.quitting.add_listener
def _judge_coverage(environment: Environment, **_: Any) -> None:
    """List what was skipped or never exercised; a silent class or route ends the run non-zero."""
    if isinstance(environment.runner, WorkerRunner) or environment.parsed_options is None:
        return
    coverage, found = run_coverage(environment)
    if not coverage.users:
        return  # no Archivist user ran (a plug-in-only run): nothing to judge
    for line in summary_lines(coverage, found):
        log.info(line)
    record_in_meta(run_dir_of(environment), coverage={**coverage.to_json(), **found.to_json()})
    if found.problems:
        more = f" (and {len(found.problems) - 1} more above)" if len(found.problems) > 1 else ""
        if getattr(environment.parsed_options, "allow_silent", False):
            log.warning("the workload was silent (--allow-silent): %s%s", found.problems[0], more)
            return
        log.error("error: the workload was silent: %s%s", found.problems[0], more)
        environment.process_exit_code = 1
