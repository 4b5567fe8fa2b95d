"""Gate configuration (``config/gate.toml``): thresholds written as short strings.

Absolute checks follow k6's style, ``"p95 < 500ms"``, ``"error_rate < 1%"``,
``"throughput > 20/s"``; relative checks compare with the baseline, ``"p95 +20%"``
(worse when 20% higher), ``"throughput -15%"`` (worse when 15% lower),
``"error_rate +1pp"`` (worse when 1 percentage point higher). Metric names:
``p50 p90 p95 p99 p<q>``, ``mean``, ``max``, ``error_rate``, ``throughput``; a
``corrected_`` prefix on a latency metric uses the coordinated-omission corrected
latency.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from analysis.load import InputError
from workload.distribution import Distribution, distribution_of, distribution_problem

_LATENCY = r"(?:corrected_)?(?:p\d+(?:\.\d+)?|mean|max)"
_METRIC = rf"(?P<metric>{_LATENCY}|error_rate|throughput)"
_ABS_RE = re.compile(
    rf"^\s*{_METRIC}\s*(?P<op><=|>=|<|>)\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>ms|us|s|%|/s|rps)?\s*$"
)
_REL_RE = re.compile(
    rf"^\s*{_METRIC}\s*(?P<sign>[+-])\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>%|pp)\s*$"
)
_UNIT_TO_MS = {"ms": 1.0, "us": 0.001, "s": 1000.0}
_S = TypeVar("_S", "Settings", "PairedSettings", "RunSettings")


@dataclass(frozen=True)
class Absolute:
    """``metric op value``; ``value`` is in ms for latency, a fraction for error_rate, req/s."""

    metric: str
    op: str
    value: float
    text: str

    def passes(self, observed: float) -> bool:
        return {
            "<": observed < self.value,
            "<=": observed <= self.value,
            ">": observed > self.value,
            ">=": observed >= self.value,
        }[self.op]


@dataclass(frozen=True)
class Relative:
    """Worse-direction change allowed before a significant change counts as a regression.

    ``direction`` +1 means higher is worse. ``kind`` is "ratio" (``limit`` is the
    allowed relative change, 0.2 for 20%) or "diff" (``limit`` as a fraction, 0.01 for
    1 pp).
    """

    metric: str
    direction: int
    limit: float
    kind: str
    text: str


@dataclass(frozen=True)
class Settings:
    confidence: float = 0.95
    resamples: int = 1000
    block_s: float = 1.0
    warmup_s: float = 0.0
    min_samples: int = 200
    min_blocks: int = 10
    min_tail: int = 20
    min_effect_ms: float = 0.0
    seed: int = 1
    baseline_cap: int = 20_000


@dataclass(frozen=True)
class PairedSettings:
    """``[paired]``: how ``gate --against REF`` slices its load (see analysis/paired.py)."""

    slices: int = 18
    slice_s: float = 10.0
    warmup_s: float = 3.0
    users: int = 30
    spawn_rate: float = 10.0
    stop_timeout_s: float = 3.0
    locustfile: str = "locustfiles/vod.py"
    seed: int = 1
    min_requests: int = 30
    min_tail: int = 3
    # added to every slice's Locust command (a hosted app's slices leave out its slow
    # system views and every user's first look round: see [apps.archivist-flask.paired])
    locust_flags: tuple[str, ...] = ()
    # in place of [settings] min_effect_ms when set: a pair shares the machine's noise, so
    # a paired gate can hold a smaller change in ms to account than two runs days apart
    min_effect_ms: float | None = None


@dataclass(frozen=True)
class RunSettings:
    """``[run]``: the gate's own load (``gate --start-stack``, ``baseline record``).

    ``routes`` empty means the target's own profile: ``contract`` for the reference stack,
    the hosted app's (config/apps/NAME.toml ``routes``) for a real Archivist.
    """

    locustfile: str = "locustfiles/vod.py"
    users: int = 30
    spawn_rate: float = 10.0
    duration_s: float = 90.0
    stop_timeout_s: float = 15.0
    seed: int = 1
    baseline: str = "main"
    routes: str = ""
    # Locust's master/worker mode, as an experiment's [load] says it (workload/distribution.py)
    workers: int = 0
    expect_workers: int = 0
    master_bind_host: str = "127.0.0.1"
    master_bind_port: int = 5557
    expect_workers_wait_s: float = 120.0

    def distribution(self) -> Distribution:
        return distribution_of(asdict(self))


@dataclass(frozen=True)
class GateConfig:
    settings: Settings = field(default_factory=Settings)
    paired: PairedSettings = field(default_factory=PairedSettings)
    run: RunSettings = field(default_factory=RunSettings)
    app: str | None = None  # the [apps.NAME] table applied, if any
    absolute_overall: tuple[Absolute, ...] = ()
    absolute_names: dict[str, tuple[Absolute, ...]] = field(default_factory=dict)
    relative_overall: tuple[Relative, ...] = ()
    relative_per_name: tuple[Relative, ...] = ()
    # [paired] per_name: a paired gate's own per-name limits (empty: relative_per_name)
    paired_per_name: tuple[Relative, ...] = ()

    def for_pairs(self) -> GateConfig:
        """The limits a paired gate applies: ``[paired]`` per_name and min_effect_ms where
        given. Pairs cancel the machine's drift, so they can hold tighter limits than a
        comparison with a baseline recorded on another day."""
        effect = self.paired.min_effect_ms
        return replace(
            self,
            relative_per_name=self.paired_per_name or self.relative_per_name,
            settings=self.settings
            if effect is None
            else replace(self.settings, min_effect_ms=effect),
        )


def parse_absolute(text: str, where: str = "threshold") -> Absolute:
    """``"p95 < 500ms"`` -> Absolute(metric="p95", op="<", value=500.0)."""
    m = _ABS_RE.match(text) if isinstance(text, str) else None
    if m is None:
        raise InputError(
            f'{where}: "{text}" is not an absolute threshold; expected e.g. "p95 < 500ms", '
            '"error_rate < 1%", "throughput > 20/s"'
        )
    metric, unit, value = m["metric"], m["unit"], float(m["value"])
    if metric == "error_rate":
        if unit not in (None, "%"):
            raise InputError(f'{where}: "{text}": error_rate takes a percentage such as 1%')
        value = value / 100.0 if unit == "%" else value
    elif metric == "throughput":
        if unit not in (None, "/s", "rps"):
            raise InputError(f'{where}: "{text}": throughput takes requests per second, e.g. 20/s')
    else:
        if unit not in (None, *_UNIT_TO_MS):
            raise InputError(f'{where}: "{text}": latency takes ms, s or us')
        value *= _UNIT_TO_MS[unit or "ms"]
    _check_quantile(metric, where, text)
    return Absolute(metric=metric, op=m["op"], value=value, text=text.strip())


def parse_relative(text: str, where: str = "threshold") -> Relative:
    """``"p95 +20%"`` -> Relative(metric="p95", direction=+1, limit=0.2, kind="ratio")."""
    m = _REL_RE.match(text) if isinstance(text, str) else None
    if m is None:
        raise InputError(
            f'{where}: "{text}" is not a relative threshold; expected e.g. "p95 +20%", '
            '"throughput -15%", "error_rate +1pp"'
        )
    metric, unit = m["metric"], m["unit"]
    if unit == "pp" and metric != "error_rate":
        raise InputError(f'{where}: "{text}": percentage points (pp) apply to error_rate only')
    _check_quantile(metric, where, text)
    return Relative(
        metric=metric,
        direction=1 if m["sign"] == "+" else -1,
        limit=float(m["value"]) / 100.0,
        kind="diff" if unit == "pp" else "ratio",
        text=text.strip(),
    )


def _check_quantile(metric: str, where: str, text: str) -> None:
    q = quantile_of(metric)
    if q is not None and not 0.0 < q < 1.0:
        raise InputError(f'{where}: "{text}": percentile must be between 0 and 100 exclusive')


def quantile_of(metric: str) -> float | None:
    """``"p99.9"`` -> 0.999; None for metrics that are not percentiles."""
    base = metric.removeprefix("corrected_")
    if re.fullmatch(r"p\d+(?:\.\d+)?", base):
        return float(base[1:]) / 100.0
    return None


def _list(raw: Any, where: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise InputError(f"{where}: expected a list of strings")
    return raw


APP_SECTIONS = ("settings", "run", "paired", "absolute", "relative")


def for_app(data: dict[str, Any], app: str | None, source: str) -> dict[str, Any]:
    """The document with ``[apps.NAME]``'s sections in place of the top-level ones.

    Section by section, key by key: an app that gives ``absolute.names`` replaces the
    reference's named checks (its routes are other routes) and keeps ``absolute.overall``
    unless it gives its own. An app without a table gets the top-level sections.
    """
    apps = data.get("apps", {})
    if not isinstance(apps, dict) or not all(isinstance(t, dict) for t in apps.values()):
        raise InputError(f"{source}: apps must hold one table per app, [apps.NAME]")
    for name, table in apps.items():
        unknown = sorted(set(table) - set(APP_SECTIONS))
        if unknown:
            raise InputError(
                f"{source}: apps.{name}.{unknown[0]} is not a section; "
                f"known: {', '.join(APP_SECTIONS)}"
            )
        for section in APP_SECTIONS:
            if not isinstance(table.get(section, {}), dict):
                raise InputError(f"{source}: apps.{name}.{section} must be a table")
    chosen = apps.get(app, {}) if app is not None else {}
    merged = {k: v for k, v in data.items() if k != "apps"}
    for section, values in chosen.items():
        base = merged.get(section, {})
        merged[section] = {**(base if isinstance(base, dict) else {}), **values}
    return merged


def parse_config(
    data: dict[str, Any], source: str = "gate.toml", app: str | None = None
) -> GateConfig:
    """Validate a parsed TOML document into a GateConfig (for ``app``, see for_app)."""
    data = for_app(data, app, source)
    settings = _section(data.get("settings", {}), Settings, "settings", source)
    if not 0.5 <= settings.confidence < 1.0:
        raise InputError(f"{source}: settings.confidence must be in [0.5, 1)")
    if settings.resamples < 100 or settings.block_s <= 0:
        raise InputError(f"{source}: settings.resamples must be >= 100 and block_s > 0")
    paired_raw = data.get("paired", {})
    paired_limits = paired_raw.get("per_name") if isinstance(paired_raw, dict) else None
    if isinstance(paired_raw, dict):
        paired_raw = {k: v for k, v in paired_raw.items() if k != "per_name"}
    paired = _paired(paired_raw, source)
    run = _run(data.get("run", {}), source)
    absolute = data.get("absolute", {})
    relative = data.get("relative", {})
    names = absolute.get("names", {})
    if not isinstance(names, dict):
        raise InputError(f"{source}: absolute.names must be a table of name = [thresholds]")
    return GateConfig(
        settings=settings,
        paired=paired,
        run=run,
        app=app,
        absolute_overall=tuple(
            parse_absolute(t, f"{source}: absolute.overall[{i}]")
            for i, t in enumerate(_list(absolute.get("overall"), f"{source}: absolute.overall"))
        ),
        absolute_names={
            name: tuple(
                parse_absolute(t, f'{source}: absolute.names."{name}"[{i}]')
                for i, t in enumerate(_list(ts, f'{source}: absolute.names."{name}"'))
            )
            for name, ts in names.items()
        },
        relative_overall=tuple(
            parse_relative(t, f"{source}: relative.overall[{i}]")
            for i, t in enumerate(_list(relative.get("overall"), f"{source}: relative.overall"))
        ),
        relative_per_name=tuple(
            parse_relative(t, f"{source}: relative.per_name[{i}]")
            for i, t in enumerate(_list(relative.get("per_name"), f"{source}: relative.per_name"))
        ),
        paired_per_name=tuple(
            parse_relative(t, f"{source}: paired.per_name[{i}]")
            for i, t in enumerate(_list(paired_limits, f"{source}: paired.per_name"))
        ),
    )


def _section(raw: Any, cls: type[_S], name: str, source: str) -> _S:
    """A ``[name]`` table as a ``cls`` dataclass: a table, known keys only, one line each."""
    known = set(cls.__dataclass_fields__)
    if not isinstance(raw, dict):
        raise InputError(f"{source}: {name} must be a table")
    unknown = set(raw) - known
    if unknown:
        raise InputError(
            f"{source}: {name}.{sorted(unknown)[0]} is not a setting; "
            f"known: {', '.join(sorted(known))}"
        )
    try:
        return cls(**raw)
    except TypeError as exc:
        raise InputError(f"{source}: {name}: {exc}") from exc


def _paired(raw: Any, source: str) -> PairedSettings:
    if isinstance(raw, dict) and "locust_flags" in raw:
        flags = _list(raw["locust_flags"], f"{source}: paired.locust_flags")
        raw = raw | {"locust_flags": tuple(flags)}
    paired = _section(raw, PairedSettings, "paired", source)
    check_paired(paired, f"{source}: paired")
    return paired


def _run(raw: Any, source: str) -> RunSettings:
    run = _section(raw, RunSettings, "run", source)
    check_run(run, f"{source}: run")
    return run


def check_run(run: RunSettings, where: str) -> None:
    """Refuse a gate load that cannot run (also for values given on the CLI)."""
    for name, kind in (("users", int), ("seed", int)):
        if type(getattr(run, name)) is not kind:
            raise InputError(f"{where}: {name} must be a whole number")
    for name in ("spawn_rate", "duration_s", "stop_timeout_s"):
        if type(getattr(run, name)) not in (int, float):
            raise InputError(f"{where}: {name} must be a number")
    for name in ("locustfile", "baseline", "routes"):
        if not isinstance(getattr(run, name), str):
            raise InputError(f"{where}: {name} must be a string")
    if run.users < 1 or not run.spawn_rate > 0:
        raise InputError(f"{where}: users must be >= 1 and spawn_rate > 0")
    if not run.duration_s > 0 or not run.stop_timeout_s >= 0:
        raise InputError(f"{where}: duration_s must be > 0 and stop_timeout_s >= 0")
    if not run.locustfile:
        raise InputError(f"{where}: locustfile must name a file, e.g. locustfiles/vod.py")
    if problem := distribution_problem(asdict(run)):
        raise InputError(f"{where}: {problem[0]} {problem[1]}")


def check_paired(paired: PairedSettings, where: str) -> None:
    """Refuse slicings that cannot be run or compared (also for values given on the CLI)."""
    if paired.slices < 2 or paired.slices % 2:
        raise InputError(f"{where}: slices must be an even number >= 2 (one pair = 2 slices)")
    if not paired.warmup_s >= 0 or not paired.slice_s > paired.warmup_s:
        raise InputError(f"{where}: slice_s must be longer than warmup_s (>= 0)")
    if paired.users < 1 or not paired.spawn_rate > 0 or not paired.stop_timeout_s >= 0:
        raise InputError(f"{where}: users >= 1, spawn_rate > 0 and stop_timeout_s >= 0 needed")
    if paired.min_requests < 1 or paired.min_tail < 1:
        raise InputError(f"{where}: min_requests and min_tail must be >= 1")
    if paired.min_effect_ms is not None and not paired.min_effect_ms >= 0:
        raise InputError(f"{where}: min_effect_ms must be >= 0 (ms)")


def load_config(path: Path | str, app: str | None = None) -> GateConfig:
    """config/gate.toml as it applies to ``app`` (None or "reference": the reference stack)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InputError(f"{path}: gate config not found") from exc
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from exc
    return parse_config(data, str(path), None if app == "reference" else app)
