"""Experiment files: the schema of `config/experiments/*.toml`, read and validated on load.

An experiment is what a person reviews (STYLE.md section 3): the load, the faults on a
timeline, the steady-state hypothesis per phase, and the audit. Every problem is
reported with the file and the field, e.g.
`config/experiments/db.toml: faults[0].link "postgress" is not a proxy; known: ...`,
so a typo never becomes a KeyError in the middle of a run.

Shape (durations as "60s", "3m", "1m30s", "500ms" or a number of seconds)::

    title = "Database latency: reads slow, nothing lost"
    [load]                 locustfile, users, spawn_rate, duration, warmup, tags,
                           exclude_tags, user_classes, arrival_rate (open model), shape,
                           options (any other Locust flag: { "stop-timeout" = 10 }),
                           routes (route/auth profile of config/routes/, default contract:
                           which routes the workload uses and what the audit checks)
    [[faults]]             link, toxic (a Toxiproxy type or "down"), attributes,
                           stream, toxicity, at (or start), for (or duration), and
                           optionally `during = {...}`: this fault's own during-tolerance
    [hypothesis]           error_rate, other_errors (failures without a proper 503 or 4xx
                           answer: timeouts, resets, 500s), p95_ms,
                           throughput: defaults for every phase
    [hypothesis.before|during|after]   per-phase overrides
                           recovers_within, sustained: the recovery target
                           p95_routes: route keys of the profile whose latency p95_ms
                           measures (default every request)
                           min_samples: a check on fewer requests in a phase (p95_ms: of
                           any of p95_routes) is skipped with its count (default 0)
    [audit]                enabled, lost_writes, duplicates, inconsistent, stuck, stuck_after,
                           drain
    [stack]                app (config/apps/NAME.toml: host that real Archivist instead of
                           the reference one; its route profile becomes the default
                           load.routes), app_src (its checkout; default $ARCHIVIST_SRC)

Bounds are strings `"< 1%"`, `"<= 800"`, `"> 30%"`. For `throughput`, a percentage is
relative to the before phase and a plain number is requests per second; for `p95_ms` in
the during or after phase, a percentage is of the before phase's p95 ("< 150%": at most
half as slow again), a plain number milliseconds.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from experiments.errors import ExperimentError
from experiments.experiment import (
    METRICS,
    PHASES,
    REPO_ROOT,
    Audit,
    Bound,
    Experiment,
    Fault,
    Hypothesis,
    Load,
    StackChoice,
    Tolerance,
)
from experiments.field_reader import FieldReader, field_path, kind_of
from experiments.written_values import parse_bound
from faults.toxic_types import DOWN, STREAMS, TOXICS, attribute_problem, whole_numbers
from workload.distribution import FIELDS as DISTRIBUTION_FIELDS
from workload.distribution import distribution_of, distribution_problem

PROXIES_FILE = REPO_ROOT / "config" / "proxies.json"


def known_links(proxies_file: Path = PROXIES_FILE) -> tuple[str, ...]:
    """Proxy names from config/proxies.json: the links an experiment may break."""
    data = json.loads(proxies_file.read_text(encoding="utf-8"))
    return tuple(entry["name"] for entry in data)


def load_experiment(path: str | Path, links: tuple[str, ...] | None = None) -> Experiment:
    """Read and validate one experiment file; ExperimentError names file and field."""
    path = Path(path)
    if path.is_dir():
        raise ExperimentError(f"{path} is a folder, not an experiment file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ExperimentError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ExperimentError(f"{path}: not valid TOML: {exc}") from None
    return parse_experiment(data, path, links if links is not None else known_links())


def parse_experiment(data: dict[str, Any], path: Path, links: tuple[str, ...]) -> Experiment:
    r = FieldReader(path)
    r.only(data, ("title", "description", "load", "faults", "hypothesis", "audit", "stack"), "")
    title = data.get("title", path.stem)
    if not isinstance(title, str) or not title.strip():
        raise r.fail("title", "must be a non-empty string")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise r.fail("description", "must be a string")
    stack = _stack(r, r.table(data, "stack", ""))
    load = _load(r, r.table(data, "load", ""), app_routes(stack.app))
    raw_faults = data.get("faults", [])
    if not isinstance(raw_faults, list) or (not raw_faults and load.shape != "step"):
        # a step load (a capacity experiment) is its own disturbance: faults may be absent
        raise r.fail("faults", "must be a non-empty array of tables ([[faults]])")
    hypothesis_raw = r.table(data, "hypothesis", "")
    audit_raw = dict(r.table(data, "audit", ""))
    if "lost_writes" in hypothesis_raw:  # STYLE.md's spelling; it is an audit check
        audit_raw.setdefault("lost_writes", hypothesis_raw["lost_writes"])
        hypothesis_raw = {k: v for k, v in hypothesis_raw.items() if k != "lost_writes"}
    hypothesis = _hypothesis(r, hypothesis_raw, load.routes)
    faults = tuple(
        _fault(r, raw, f"faults[{i}]", links, hypothesis.during) for i, raw in enumerate(raw_faults)
    )
    audit = _audit(r, audit_raw)
    for i, fault in enumerate(faults):
        where = f"faults[{i}]"
        if fault.at < load.warmup:
            raise r.fail(
                f"{where}.at",
                f"{fault.at:g}s starts inside the warm-up ({load.warmup:g}s); "
                "the before phase needs steady load first",
            )
        observed = fault.end + hypothesis.recovers_within + hypothesis.sustained
        if observed > load.duration - 1:
            raise r.fail(
                f"{where}.for",
                f"the fault ends at {fault.end:g}s; with recovers_within "
                f"{hypothesis.recovers_within:g}s and sustained {hypothesis.sustained:g}s the "
                f"after phase needs the load to run until {observed + 1:g}s, but "
                f"load.duration is {load.duration:g}s; shorten the fault or lengthen the load",
            )
    return Experiment(
        path=path,
        name=path.stem,
        title=title.strip(),
        description=description.strip(),
        load=load,
        faults=faults,
        hypothesis=hypothesis,
        audit=audit,
        stack=stack,
    )


def app_routes(app: str | None) -> str:
    """The route profile of a hosted app (config/apps/NAME.toml `routes`), else the contract."""
    from testbed.hosted.spec import REFERENCE, load_app

    if app is None or app == REFERENCE:
        return "contract"
    return load_app(REPO_ROOT, app).routes


def _stack(r: FieldReader, raw: dict[str, Any]) -> StackChoice:
    from testbed.hosted.spec import known_apps
    from testbed.processes import StackError

    r.only(raw, ("app", "app_src"), "stack")
    app = raw.get("app")
    if app is not None:
        known = known_apps(REPO_ROOT)
        if app not in known:
            raise r.fail("stack.app", f"{app!r} is not an app; known: {', '.join(known)}")
        try:
            app_routes(app)
        except StackError as exc:
            raise r.fail("stack.app", str(exc)) from None
    src = raw.get("app_src")
    if src is not None and (not isinstance(src, str) or not src.strip()):
        raise r.fail("stack.app_src", "must be the path of the app's checkout")
    app_src = None
    if src is not None:
        app_src = Path(src).expanduser()
        app_src = app_src if app_src.is_absolute() else (r.path.parent / app_src)
    return StackChoice(app=app, app_src=app_src)


def _load(r: FieldReader, raw: dict[str, Any], default_routes: str = "contract") -> Load:
    where = "load"
    allowed = (
        "locustfile",
        "users",
        "spawn_rate",
        "duration",
        "warmup",
        "tags",
        "exclude_tags",
        "user_classes",
        "arrival_rate",
        "shape",
        "options",
        "routes",
        *DISTRIBUTION_FIELDS,
    )
    r.only(raw, allowed, where)
    locustfile = r.require(raw, "locustfile", where)
    if not isinstance(locustfile, str) or not locustfile.strip():
        raise r.fail("load.locustfile", "must be a path like locustfiles/vod.py")
    for part in locustfile.split(","):
        if not (REPO_ROOT / part).exists() and not Path(part).exists():
            raise r.fail("load.locustfile", f'"{part}" does not exist')
    users = int(r.number(raw, "users", where, low=1, high=10_000, integer=True))
    spawn_rate = float(r.number(raw, "spawn_rate", where, default=users, low=0.01))
    duration = r.duration(raw, "duration", where)
    warmup = r.duration(raw, "warmup", where, default="5s")
    if duration <= warmup:
        raise r.fail("load.duration", f"{duration:g}s must be longer than warmup {warmup:g}s")
    arrival_rate = None
    if "arrival_rate" in raw:
        arrival_rate = float(r.number(raw, "arrival_rate", where, low=0.001))
    shape = raw.get("shape")
    if shape is not None and (not isinstance(shape, str) or not shape.strip()):
        raise r.fail("load.shape", "must be the name of a shape in config/shapes.toml")
    if problem := distribution_problem(raw):
        raise r.fail(f"load.{problem[0]}", problem[1])
    options = r.table(raw, "options", where)
    for key, value in options.items():
        if not re.fullmatch(r"[a-z][a-z0-9-]*", key):
            raise r.fail(f"load.options.{key}", 'must be a Locust flag name like "stop-timeout"')
        if not isinstance(value, str | int | float | bool):
            raise r.fail(f"load.options.{key}", "must be a string, number or boolean")
    return Load(
        locustfile=locustfile,
        users=users,
        spawn_rate=spawn_rate,
        duration=duration,
        warmup=warmup,
        tags=r.strings(raw, "tags", where),
        exclude_tags=r.strings(raw, "exclude_tags", where),
        user_classes=r.strings(raw, "user_classes", where),
        arrival_rate=arrival_rate,
        shape=shape,
        options=dict(options),
        routes=check_routes(raw.get("routes", default_routes), r.fail),
        distribution=distribution_of(raw),
    )


def check_routes(name: Any, fail: Callable[[str, str], ExperimentError]) -> str:
    """A route/auth profile that exists and loads (its name, or a path to its .toml)."""
    from workload.routes import Profile
    from workload.tomlconfig import ConfigError

    if not isinstance(name, str) or not name.strip():
        raise fail("load.routes", "must be the name of a profile in config/routes/")
    try:
        Profile.load(name)
    except ConfigError as exc:
        raise fail("load.routes", str(exc).removeprefix(f"--routes {name!r}: ")) from None
    return name


def _fault(
    r: FieldReader, raw: Any, where: str, links: tuple[str, ...], during: Tolerance
) -> Fault:
    if not isinstance(raw, dict):
        raise r.fail(where, f"must be a table, got {kind_of(raw)}")
    allowed = ("link", "toxic", "attributes", "stream", "toxicity", "at", "start", "for", "during")
    r.only(raw, (*allowed, "duration"), where)
    link = r.require(raw, "link", where)
    if link not in links:
        raise r.fail(f"{where}.link", f'"{link}" is not a proxy; known: {", ".join(links)}')
    toxic = r.require(raw, "toxic", where)
    if toxic not in TOXICS:
        raise r.fail(f"{where}.toxic", f'"{toxic}" is not a toxic; known: {", ".join(TOXICS)}')
    attributes = r.table(raw, "attributes", where)
    if problem := attribute_problem(toxic, attributes):
        raise r.fail(f"{where}.{problem[0]}", problem[1])
    stream = raw.get("stream", "downstream")
    if stream not in STREAMS:
        raise r.fail(f"{where}.stream", f'"{stream}" is not a stream; known: {", ".join(STREAMS)}')
    if toxic == DOWN and ("stream" in raw or "toxicity" in raw):
        raise r.fail(where, "down disables the whole proxy; it takes no stream or toxicity")
    toxicity = float(r.number(raw, "toxicity", where, default=1.0, low=0.0, high=1.0))
    if toxicity == 0:
        raise r.fail(f"{where}.toxicity", "is 0: the toxic would never apply; give 0 < t <= 1")
    if "at" in raw and "start" in raw:
        raise r.fail(f"{where}.start", 'give "at" or "start", not both')
    if "for" in raw and "duration" in raw:
        raise r.fail(f"{where}.duration", 'give "for" or "duration", not both')
    at_key = "start" if "start" in raw else "at"
    for_key = "duration" if "duration" in raw else "for"
    at = r.duration(raw, at_key, where)
    length = r.duration(raw, for_key, where)
    override = None
    if "during" in raw:
        sub = r.table(raw, "during", where)
        r.only(sub, METRICS, f"{where}.during")
        override = _tolerance(r, sub, f"{where}.during", during)
    if length <= 0:
        raise r.fail(f"{where}.{for_key}", "must be longer than 0s")
    return Fault(
        link=link,
        toxic=toxic,
        at=at,
        duration=length,
        attributes=whole_numbers(attributes),
        stream=stream,
        toxicity=toxicity,
        during=override,
    )


def _tolerance(r: FieldReader, raw: dict[str, Any], where: str, base: Tolerance) -> Tolerance:
    values: dict[str, Bound | None] = {
        "error_rate": base.error_rate,
        "other_errors": base.other_errors,
        "p95_ms": base.p95_ms,
        "throughput": base.throughput,
    }
    for metric in METRICS:
        if metric in raw:
            try:
                values[metric] = parse_bound(raw[metric], metric)
            except ValueError as exc:
                raise r.fail(field_path(where, metric), str(exc)) from None
    return Tolerance(**values)


def _hypothesis(r: FieldReader, raw: dict[str, Any], routes: str = "contract") -> Hypothesis:
    from workload.routes import Profile

    where = "hypothesis"
    r.only(
        raw, (*METRICS, *PHASES, "recovers_within", "sustained", "p95_routes", "min_samples"), where
    )
    p95_routes = r.strings(raw, "p95_routes", where)
    unknown = sorted(set(p95_routes) - set(Profile.load(routes).routes))
    if unknown:
        raise r.fail(
            f"{where}.p95_routes",
            f"{', '.join(unknown)}: not a route of profile {routes!r} (load.routes)",
        )
    defaults = _tolerance(r, raw, where, Tolerance())
    if defaults.p95_ms is not None and defaults.p95_ms.relative:
        raise r.fail(
            f"{where}.p95_ms",
            "a percentage is of the before phase's p95: give it in [hypothesis.during] "
            "or [hypothesis.after], and milliseconds here",
        )
    phases = {}
    for phase in PHASES:
        sub = r.table(raw, phase, where)
        r.only(sub, METRICS, f"{where}.{phase}")
        phases[phase] = _tolerance(r, sub, f"{where}.{phase}", defaults)
    if phases["before"].throughput is not None and phases["before"].throughput.relative:
        raise r.fail(f"{where}.before.throughput", "cannot be relative to itself; give req/s")
    if phases["before"].p95_ms is not None and phases["before"].p95_ms.relative:
        raise r.fail(f"{where}.before.p95_ms", "cannot be relative to itself; give ms")
    recovers_within = r.duration(raw, "recovers_within", where)
    sustained = r.duration(raw, "sustained", where, default="5s")
    if sustained <= 0:
        raise r.fail(f"{where}.sustained", "must be longer than 0s")
    return Hypothesis(
        before=phases["before"],
        during=phases["during"],
        after=phases["after"],
        recovers_within=recovers_within,
        sustained=sustained,
        p95_routes=p95_routes,
        min_samples=int(r.number(raw, "min_samples", where, default=0, integer=True)),
    )


def _audit(r: FieldReader, raw: dict[str, Any]) -> Audit:
    where = "audit"
    allowed = (
        "enabled",
        "lost_writes",
        "duplicates",
        "inconsistent",
        "stuck",
        "stuck_after",
        "drain",
    )
    r.only(raw, allowed, where)
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise r.fail("audit.enabled", "must be true or false")
    return Audit(
        enabled=enabled,
        lost_writes=int(r.number(raw, "lost_writes", where, default=0, integer=True)),
        duplicates=int(r.number(raw, "duplicates", where, default=0, integer=True)),
        inconsistent=int(r.number(raw, "inconsistent", where, default=0, integer=True)),
        stuck=int(r.number(raw, "stuck", where, default=0, integer=True)),
        stuck_after=r.duration(raw, "stuck_after", where, default="60s"),
        drain=r.duration(raw, "drain", where, default="30s"),
    )
