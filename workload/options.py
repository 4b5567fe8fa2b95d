"""The workload's command-line options, and the checks and choices made from them at init.

``--routes``, ``--cablecast-url``, ``--arrival-rate``, ``--allow-silent`` and
``--no-look-round`` (and the
target's, the link counters' and the fixtures' own options); at init: with ``-T``/``-E``,
user classes left without tasks are not spawned; ``--routes`` spawns the profile's users; a bad
profile or workload config ends the run at start, with the file named.
"""

from __future__ import annotations

from typing import Any

from locust import events
from locust.env import Environment

from workload import target
from workload.faults_url import add_faults_url
from workload.fixtures import add_fixtures
from workload.routes import users_for
from workload.settings import profile_of, workload
from workload.tomlconfig import ConfigError


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--routes",
        default="contract",
        include_in_web_ui=True,
        help="Route/auth profile: a name in config/routes/ or a .toml path (default: contract)",
    )
    parser.add_argument(
        "--cablecast-url",
        default="",
        include_in_web_ui=True,
        help="Cablecast API base for verifying published VODs "
        "(default: the simulator of config/stack.toml)",
    )
    parser.add_argument(
        "--arrival-rate",
        type=float,
        default=0.0,
        include_in_web_ui=True,
        help="Open model: requests/s per OpenModelReader user, Poisson arrivals "
        "(default: open_model.rate_per_user in config/workload.toml)",
    )
    parser.add_argument(
        "--allow-silent",
        action="store_true",
        default=False,
        help="List silent user classes and unexercised routes but do not fail the run on "
        "them: for measurement slices shorter than the workload's cycle (the paired gate)",
    )
    parser.add_argument(
        "--no-look-round",
        action="store_true",
        default=False,
        help="Users start their steady work at once, without first visiting every route of "
        "their profile: for measurement slices (the paired gate of two app versions)",
    )
    target.add_arguments(parser)
    add_faults_url(parser)
    add_fixtures(parser)


def has_tagged_tasks(user_class: type, tags: set[str] | None, exclude: set[str] | None) -> bool:
    """Whether `-T`/`-E` leave the class any task (TaskSets count as having tasks)."""
    for t in getattr(user_class, "tasks", []):
        found = set(getattr(t, "locust_tag_set", set()))
        if (tags is None or found & tags) and not (exclude and found & exclude):
            return True
    return False


@events.init.add_listener
def _drop_users_without_tasks(environment: Environment, **_: Any) -> None:
    """With `-T db`, the auth or open-model users have nothing to do: do not spawn them.

    Locust would spawn them anyway and log "No tasks defined" for each; pruning the list,
    as Locust itself does for weight-0 classes, keeps a tag-selected phase clean.
    """
    opts = environment.parsed_options
    tags = set(opts.tags) if opts is not None and getattr(opts, "tags", None) else None
    exclude = (
        set(opts.exclude_tags) if opts is not None and getattr(opts, "exclude_tags", None) else None
    )
    if tags is None and exclude is None:
        return
    kept = [c for c in environment.user_classes if has_tagged_tasks(c, tags, exclude)]
    if not kept:
        raise SystemExit(f"error: no user class has tasks for tags {sorted(tags or [])}")
    environment.user_classes[:] = kept


@events.init.add_listener
def _users_of_the_profile(environment: Environment, **_: Any) -> None:
    """`--routes archivist-flask` spawns that deployment's users, not the contract's."""
    try:
        profile = profile_of(environment)
    except ConfigError:
        return  # _check_config reports it
    # Imported here: workload.users imports this module (to register it) before it
    # defines the class.
    from workload.users import ArchivistUser

    kept = users_for(profile, list(environment.user_classes), ArchivistUser)
    if not kept:
        raise SystemExit(
            f"error: no user class of these locustfiles is written for profile "
            f"{profile.name!r} (it names {', '.join(profile.users) or 'none'})"
        )
    environment.user_classes[:] = kept
    if isinstance(environment.user_classes_by_name, dict):
        for name in list(environment.user_classes_by_name):
            if environment.user_classes_by_name[name] not in kept:
                del environment.user_classes_by_name[name]


@events.init.add_listener
def _check_config(environment: Environment, **_: Any) -> None:
    """Fail at start, with the file named, rather than in every user."""
    try:
        profile_of(environment)
        workload()
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
