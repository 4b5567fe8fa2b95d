"""Did the service keep its promises? Pure functions from captured requests to a verdict.

Input is the requests DataFrame of a run folder (`t_start` epoch seconds, `latency_us`,
`ok`; see analysis.capture) and the fault windows of `faults.jsonl`. Nothing here
prints or reads files, so each step is checked on a ten-row frame.

Phases: *before* runs from the end of the warm-up to the first fault; *during* is each
disturbance; *after* starts when the recovery allowance (`recovers_within`) has passed
and runs to the next disturbance or the end of the load. Fault windows closer together
than `recovers_within + sustained` form one disturbance (a flapping link is one
episode), because recovery cannot be judged in a gap shorter than that.

Recovery time: from the end of a disturbance until the error rate and p95 over a
rolling `sustained` window first satisfy the after-tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from experiments.evidence import (
    METHOD,
    beyond,
    counted,
    p95_interval,
    p95_ratio_interval,
    too_few,
)
from experiments.experiment import Bound, Hypothesis, Tolerance

STEP_S = 0.5  # s between candidate recovery points
# A proper answer, as the workloads word it (workload/judging.py: "status 503, expected
# ..."): a 503, or a 4xx (the service judged the request). Everything else that failed -
# no answer, a timeout, a reset, a 5xx other than 503 - is an `other_errors` failure.
PROPER_ANSWER = r"\bstatus (?:503|4\d\d)\b"
TAIL_S = 1.0  # s cut from the end of the load: users are stopping, the last second is partial
# An answer the route profile lists as a defect the app always has ([defects]; the workload
# words it "KnownDefect: ..."): not the fault's doing, so counted apart, not as an error.
KNOWN_DEFECT = "KnownDefect:"
STATUS_IN_ERROR = r"\bstatus (\d{3})\b"


@dataclass(frozen=True)
class Window:
    """One fault window as recorded in faults.jsonl (epoch seconds)."""

    start: float
    end: float
    link: str = ""
    what: str = ""
    toxic: str = ""
    bytes: int | None = None  # what the link carried during the window; None: not measured

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Window:
        carried = data.get("bytes")
        return cls(
            start=float(data["start"]),
            end=float(data["end"]),
            link=str(data.get("link", "")),
            what=str(data.get("what", "")),
            toxic=str(data.get("toxic", "")),
            bytes=sum(int(v) for v in carried.values()) if isinstance(carried, dict) else None,
        )


@dataclass(frozen=True)
class Episode:
    """Overlapping or close fault windows, judged as one disturbance."""

    start: float
    end: float
    windows: tuple[Window, ...]

    @property
    def what(self) -> str:
        return "; ".join(dict.fromkeys(w.what for w in self.windows))


@dataclass(frozen=True)
class Stats:
    requests: int
    errors: int
    error_rate: float  # NaN without requests
    other_errors: float  # share failed without a proper answer (see PROPER_ANSWER); NaN without
    p95_ms: float  # NaN without requests (over the `timed` requests when the frame has them)
    throughput: float  # requests per second
    seconds: float
    known_defects: int = 0  # answers the profile lists as the app's steady defects


@dataclass(frozen=True)
class OutageDefect:
    """A defect the app shows while one of its links is faulted (profile [[defects_during]]).

    `routes` are (method, statistics name) pairs; an answer matches when its status is in
    `status` (a request that succeeded answered one of `ok_status`, its route's expected
    statuses: e.g. a health check that says "healthy" while the database is down)."""

    link: str
    toxic: str  # "" for any fault on the link
    routes: tuple[tuple[str, str], ...]
    status: tuple[int, ...]
    ok_status: tuple[int, ...]
    why: str

    def applies(self, window: Window) -> bool:
        return window.link == self.link and (not self.toxic or window.toxic == self.toxic)


@dataclass(frozen=True)
class DefectSeen:
    """How many answers of one outage defect a during phase saw."""

    why: str
    link: str
    answers: int
    routes: tuple[str, ...]


@dataclass(frozen=True)
class Check:
    metric: str
    bound: str
    value: float
    ok: bool
    samples: int = 0  # requests the value is of
    skipped: str = ""  # why it was not decided (too few samples); a skipped check is ok
    detail: str = ""  # a relative p95's interval and the smallest change it could have seen
    # passed on its interval while its value is beyond the bound: not decided either way
    undecided: bool = False


@dataclass(frozen=True)
class Sample:
    """What a phase's checks are decided on, beyond its Stats (see experiments.evidence)."""

    timed_ms: np.ndarray  # latencies of the requests p95_ms is of
    timed_routes: dict[str, int]  # those requests per route ("METHOD name")
    routes: dict[str, int]  # every request of the phase per route


@dataclass(frozen=True)
class PhaseResult:
    phase: str  # before | during | after
    label: str
    start: float
    end: float
    stats: Stats
    checks: tuple[Check, ...]
    defects: tuple[DefectSeen, ...] = ()  # the app's own defects under this fault
    thin: dict[str, int] = field(default_factory=dict)  # routes under min_samples: counts

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


@dataclass(frozen=True)
class Recovery:
    episode: int
    what: str
    fault_end: float
    seconds: float | None  # None: never recovered before the load (or next fault) ended
    limit: float
    ok: bool


@dataclass(frozen=True)
class Verdict:
    phases: tuple[PhaseResult, ...]
    recoveries: tuple[Recovery, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)
    hit_nothing: tuple[str, ...] = field(default_factory=tuple)  # faults on idle links

    @property
    def ok(self) -> bool:
        return (
            not self.hit_nothing
            and all(p.ok for p in self.phases)
            and all(r.ok for r in self.recoveries)
        )

    @property
    def word(self) -> str:
        """PASS, FAIL, or FAULT HIT NOTHING: no verdict, the fault tested nothing."""
        if self.hit_nothing:
            return "FAULT HIT NOTHING"
        return "PASS" if self.ok else "FAIL"

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (NaN becomes null) for verdict.json."""
        data = {
            "ok": self.ok,
            "word": self.word,
            "hit_nothing": list(self.hit_nothing),
            "phases": [{**asdict(p), "ok": p.ok} for p in self.phases],
            "recoveries": [asdict(r) for r in self.recoveries],
            "notes": list(self.notes),
        }
        return _no_nan(data)


def window_stats(
    requests: pd.DataFrame, start: float, end: float, finish_by: float | None = None
) -> Stats:
    """Requests whose `t_start` lies in [start, end).

    With `finish_by`, requests still in flight at that moment are left out: a steady-state
    phase that ends where a fault begins must not be charged with what the fault did to
    the requests that straddled it.
    """
    seconds = max(end - start, 0.0)
    part = in_window(requests, start, end, finish_by)
    defects = 0
    answered = part  # a known defect's answer took as long as it took: latency counts it
    if "error" in part.columns and len(part):
        steady = part["error"].fillna("").astype(str).str.startswith(KNOWN_DEFECT)
        defects = int(steady.sum())
        part = part[~steady]
    n = len(part)
    if n == 0 and len(answered) == 0:
        return Stats(0, 0, math.nan, math.nan, math.nan, 0.0, seconds, defects)
    failed = ~part["ok"].astype(bool)
    errors = int(failed.sum())
    other = errors
    if "error" in part.columns and errors:
        said = part.loc[failed, "error"].fillna("").astype(str)
        other = int((~said.str.contains(PROPER_ANSWER, regex=True)).sum())
    timed = answered[answered["timed"].astype(bool)] if "timed" in answered else answered
    latencies = timed["latency_us"].to_numpy() / 1000.0
    p95 = float(np.percentile(latencies, 95)) if len(latencies) else math.nan
    rate = n / seconds if seconds > 0 else math.nan
    if n == 0:  # only known defects answered
        return Stats(0, 0, math.nan, math.nan, p95, rate, seconds, defects)
    return Stats(n, errors, errors / n, other / n, p95, rate, seconds, defects)


def in_window(
    requests: pd.DataFrame, start: float, end: float, finish_by: float | None = None
) -> pd.DataFrame:
    """The requests (sorted by t_start) that started in [start, end) (and ended by finish_by)."""
    t = requests["t_start"].to_numpy()
    lo, hi = np.searchsorted(t, [start, end], side="left")
    part = requests.iloc[lo:hi]
    if finish_by is not None and len(part):
        part = part[part["t_start"] + part["latency_us"] / 1e6 <= finish_by]
    return part


def outage_defects(
    requests: pd.DataFrame, episode: Episode, known: tuple[OutageDefect, ...]
) -> tuple[DefectSeen, ...]:
    """The answers, in a disturbance, that are defects the app shows under that fault."""
    seen = []
    for defect in known:
        windows = [w for w in episode.windows if defect.applies(w)]
        if not windows:
            continue
        part = pd.concat([in_window(requests, w.start, w.end) for w in windows])
        if part.empty:
            continue
        route = pd.Series(list(zip(part["type"], part["name"], strict=True)), index=part.index)
        on_route = route.isin(set(defect.routes))
        ok = part["ok"].astype(bool)
        said = part["error"].fillna("").astype(str) if "error" in part else ""
        status = pd.to_numeric(
            pd.Series(said, index=part.index).str.extract(STATUS_IN_ERROR)[0], errors="coerce"
        )
        failed_match = ~ok & status.isin(defect.status)
        ok_match = ok & bool(set(defect.status) & set(defect.ok_status))
        hits = part[on_route & (failed_match | ok_match)]
        if len(hits):
            pairs = zip(hits["type"], hits["name"], strict=True)
            names = tuple(sorted({f"{m} {n}" for m, n in pairs}))
            seen.append(DefectSeen(defect.why, defect.link, len(hits), names))
    return tuple(seen)


def sort_requests(requests: pd.DataFrame) -> pd.DataFrame:
    """Requests sorted by start time (what window_stats expects)."""
    return requests.sort_values("t_start", kind="stable").reset_index(drop=True)


def episodes(windows: list[Window], merge_gap: float) -> list[Episode]:
    """Merge windows that overlap or are less than `merge_gap` seconds apart."""
    result: list[Episode] = []
    for w in sorted(windows, key=lambda w: (w.start, w.end)):
        if result and w.start - result[-1].end < merge_gap:
            last = result[-1]
            result[-1] = Episode(last.start, max(last.end, w.end), (*last.windows, w))
        else:
            result.append(Episode(w.start, w.end, (w,)))
    return result


def phase_sample(
    requests: pd.DataFrame, start: float, end: float, finish_by: float | None = None
) -> Sample:
    """The latencies and per-route counts of [start, end), as window_stats selects them."""
    part = in_window(requests, start, end, finish_by)
    timed = part[part["timed"].astype(bool)] if "timed" in part else part
    return Sample(timed["latency_us"].to_numpy() / 1000.0, _per_route(timed), _per_route(part))


def _per_route(part: pd.DataFrame) -> dict[str, int]:
    if part.empty or "name" not in part:
        return {}
    kind = part["type"].astype(str) if "type" in part else pd.Series("", index=part.index)
    keys = (kind + " " + part["name"].astype(str)).str.strip()
    return {str(k): int(v) for k, v in keys.value_counts().sort_index().items()}


def check_phase(
    stats: Stats,
    tolerance: Tolerance,
    before: Stats | None,
    sample: Sample | None = None,
    before_sample: Sample | None = None,
    min_samples: int = 0,
    judged: tuple[str, ...] = (),
) -> tuple[Check, ...]:
    """The tolerance's bounds applied to one phase's stats (unchecked metrics are skipped).

    With `sample` (and `before_sample` for relative bounds) each check carries its sample
    count, is skipped below `min_samples` (p95_ms also when one of its `judged` routes
    has fewer), and a relative p95 is decided on its bootstrap interval
    (experiments.evidence). Without, the point values decide (recovery's rolling windows).
    """
    checks = []
    pairs: list[tuple[str, Bound | None, float, float | None]] = [
        ("error_rate", tolerance.error_rate, stats.error_rate, None),
        ("other_errors", tolerance.other_errors, stats.other_errors, None),
        ("p95_ms", tolerance.p95_ms, stats.p95_ms, before.p95_ms if before is not None else None),
        (
            "throughput",
            tolerance.throughput,
            stats.throughput,
            before.throughput if before is not None else None,
        ),
    ]
    for metric, bound, value, baseline in pairs:
        if bound is None:
            continue
        if sample is None:
            checks.append(Check(metric, str(bound), value, bound.holds(value, baseline)))
            continue
        checks.append(
            _judged(
                metric, bound, value, baseline, stats, sample, before_sample, min_samples, judged
            )
        )
    return tuple(checks)


def _judged(
    metric: str,
    bound: Bound,
    value: float,
    baseline: float | None,
    stats: Stats,
    sample: Sample,
    before_sample: Sample | None,
    min_samples: int,
    judged: tuple[str, ...],
) -> Check:
    """One check decided on its samples (see check_phase)."""
    latency = metric == "p95_ms"
    n = len(sample.timed_ms) if latency else stats.requests
    thin: dict[str, int] = {}
    if n < min_samples:
        thin["this phase"] = n
    if latency and judged:
        thin.update(too_few({r: sample.timed_routes.get(r, 0) for r in judged}, min_samples))
    if bound.relative and before_sample is not None:
        base_n = len(before_sample.timed_ms) if latency else _total(before_sample)
        if base_n < min_samples:
            thin["before"] = base_n
    relative_p95 = latency and bound.relative and before_sample is not None
    ci = None
    base_ms = before_sample.timed_ms if before_sample is not None else np.empty(0)
    if relative_p95 and len(base_ms) and len(sample.timed_ms):
        ci = p95_ratio_interval(base_ms, sample.timed_ms)
    detail = (
        ""
        if ci is None
        else f"{ci.ratio:.2f}x before (95% CI {ci.low:.2f}-{ci.high:.2f}, {METHOD}); "
        f"smallest change it could see: {100 * ci.smallest_change:.0f}%"
    )
    if latency and not bound.relative and len(sample.timed_ms):
        ci = p95_interval(sample.timed_ms)
        detail = (
            f"95% CI {ci.low:.0f}-{ci.high:.0f} ms ({METHOD}); "
            f"smallest change it could see: {100 * ci.smallest_change:.0f}%"
        )
    if thin:
        why = f"too few samples (target {min_samples}): {counted(thin)}"
        return Check(metric, str(bound), value, True, n, skipped=why, detail=detail)
    if latency and not bound.relative and ci is not None:  # the interval decides
        ok = not beyond(ci, bound.op, bound.limit)
        return _on_interval(Check(metric, str(bound), value, ok, n, "", detail), bound, baseline)
    if not relative_p95:
        return Check(metric, str(bound), value, bound.holds(value, baseline), n)
    if ci is None:
        return Check(metric, str(bound), value, False, n, detail="no timed request")
    ok = not beyond(ci, bound.op, bound.limit)
    return _on_interval(Check(metric, str(bound), value, ok, n, detail=detail), bound, baseline)


def _on_interval(check: Check, bound: Bound, baseline: float | None) -> Check:
    """A check that passed on its interval although its value is beyond the bound says so:
    it passed on the benefit of the doubt, not because the value is within."""
    if not check.ok:
        return check
    if bound.holds(check.value, baseline):  # relative: p95 within limit * before's
        return check
    note = "undecided: the value is beyond the bound, its 95% interval reaches within it"
    return replace(check, undecided=True, detail=f"{note}; {check.detail}")


def _total(sample: Sample) -> int:
    return sum(sample.routes.values())


def within(stats: Stats, tolerance: Tolerance, before: Stats | None) -> bool:
    return stats.requests > 0 and all(c.ok for c in check_phase(stats, tolerance, before))


def recovery_time(
    requests: pd.DataFrame,
    fault_end: float,
    horizon: float,
    tolerance: Tolerance,
    sustained: float,
    before: Stats | None = None,
    step: float = STEP_S,
) -> float | None:
    """Seconds from `fault_end` until a `sustained` window first meets `tolerance`.

    Candidate windows start every `step` s and must end by `horizon`; None when none
    qualifies (the service did not recover within the observed time).
    """
    candidate = fault_end
    while candidate + sustained <= horizon + 1e-9:
        stats = window_stats(requests, candidate, candidate + sustained)
        if within(stats, tolerance, before):
            return round(candidate - fault_end, 3)
        candidate += step
    return None


def missed(window: Window, link_traffic: Mapping[str, int] | None) -> str:
    """Why `window`'s fault hit nothing ('' if it hit something, or nobody can tell).

    A toxic hit nothing when its link carried no byte while it was in place. A link taken
    down carries nothing by design, so a `down` fault hit nothing when its link carried
    nothing during the whole load (no part of the workload uses that link)."""
    if window.toxic == "down":
        if link_traffic is not None and link_traffic.get(window.link, None) == 0:
            return f"{window.what}: the {window.link} link carried no byte during the whole load"
        return ""
    if window.bytes == 0:
        return (
            f"{window.what}: the {window.link} link carried no byte during its "
            f"{window.end - window.start:.1f}s window"
        )
    return ""


def evaluate(
    requests: pd.DataFrame,
    windows: list[Window],
    hypothesis: Hypothesis,
    load_start: float,
    load_end: float,
    warmup: float,
    overrides: dict[str, Tolerance] | None = None,
    link_traffic: Mapping[str, int] | None = None,
    defects: tuple[OutageDefect, ...] = (),
    judged: tuple[str, ...] = (),
) -> Verdict:
    """Every phase checked against the hypothesis, and the recovery of every disturbance.

    `overrides` maps a fault's words (`what`) to its own during-tolerance; a disturbance
    uses it when all its windows share it, else `[hypothesis.during]`. `link_traffic`
    (bytes per link over the load) and the windows' own bytes tell a fault that hit
    nothing: such an experiment gets no verdict (see `missed`). `defects` are what the
    app is known to do wrong under a fault: a during phase names those it saw (they still
    count against its tolerance: the app did not degrade as it should). `judged` names
    the routes ("METHOD name") p95_ms is of: each needs `hypothesis.min_samples` in a
    phase for its p95 to be decided there (see check_phase).
    """
    target = hypothesis.min_samples

    def judge(
        stats: Stats, sample: Sample, tolerance: Tolerance, base: Sample | None
    ) -> tuple[Check, ...]:
        return check_phase(
            stats,
            tolerance,
            before_stats if base is not None else None,
            sample,
            base,
            target,
            judged,
        )

    overrides = overrides or {}
    requests = sort_requests(requests)
    end = load_end - TAIL_S
    notes: list[str] = []
    groups = episodes(windows, hypothesis.recovers_within + hypothesis.sustained)
    if not groups:
        notes.append("no fault window was recorded: nothing was injected")
    first = groups[0].start if groups else end
    finish = first if groups else None
    before_stats = window_stats(requests, load_start + warmup, first, finish)
    before_sample = phase_sample(requests, load_start + warmup, first, finish)
    phases = [
        PhaseResult(
            "before",
            "before",
            load_start + warmup,
            first,
            before_stats,
            judge(before_stats, before_sample, hypothesis.before, None),
            thin=too_few(before_sample.routes, target),
        )
    ]
    recoveries = []
    for i, episode in enumerate(groups):
        during = window_stats(requests, episode.start, episode.end)
        during_sample = phase_sample(requests, episode.start, episode.end)
        own = {overrides.get(w.what) for w in episode.windows}
        tolerance = own.pop() if len(own) == 1 else None
        phases.append(
            PhaseResult(
                "during",
                f"during #{i + 1}: {episode.what}",
                episode.start,
                episode.end,
                during,
                judge(during, during_sample, tolerance or hypothesis.during, before_sample),
                outage_defects(requests, episode, defects),
                too_few(during_sample.routes, target),
            )
        )
        horizon = groups[i + 1].start if i + 1 < len(groups) else end
        seconds = recovery_time(
            requests, episode.end, horizon, hypothesis.after, hypothesis.sustained, before_stats
        )
        ok = seconds is not None and seconds <= hypothesis.recovers_within
        recoveries.append(
            Recovery(i + 1, episode.what, episode.end, seconds, hypothesis.recovers_within, ok)
        )
        after_start = episode.end + hypothesis.recovers_within
        if horizon - after_start < hypothesis.sustained:
            notes.append(
                f"after #{i + 1}: only {max(horizon - after_start, 0):.1f}s between the "
                "recovery allowance and the next fault or the end; after phase not checked"
            )
            continue
        finish = horizon if i + 1 < len(groups) else None
        after = window_stats(requests, after_start, horizon, finish)
        after_sample = phase_sample(requests, after_start, horizon, finish)
        phases.append(
            PhaseResult(
                "after",
                f"after #{i + 1}",
                after_start,
                horizon,
                after,
                judge(after, after_sample, hypothesis.after, before_sample),
                thin=too_few(after_sample.routes, target),
            )
        )
    hit_nothing = tuple(why for w in windows if (why := missed(w, link_traffic)))
    return Verdict(tuple(phases), tuple(recoveries), tuple(notes), hit_nothing)


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(v) for v in value]
    return value
