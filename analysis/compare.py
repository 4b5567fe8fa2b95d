"""Baseline vs current: change of percentiles, error rate and throughput with bootstrap CIs.

Requests within one second share the machine's state (GC pauses, a noisy neighbour on
a 2-core box), so they are not independent. We therefore resample whole time blocks
(``block_s`` seconds; a moving-block-style bootstrap) instead of single requests: the
interval then reflects how much the metric moves from block to block, which is the
noise a CI machine actually has.

To keep this vectorised for a million requests, each block's latencies are binned into
a fine log histogram (1% wide bins); a bootstrap replicate is then a weighted sum of
block histograms (one matrix product for all replicates) and its percentile is read
from the cumulative counts. The bins only shape the replicates; point estimates are the
exact percentiles.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.config import Settings, quantile_of
from analysis.load import Run
from analysis.stats import OVERALL

BIN_RATIO = 1.01
BIN_MIN_MS = 1e-3
N_BINS = int(np.ceil(np.log(1e9) / np.log(BIN_RATIO)))  # 1 us .. 1000 s
DEFAULT_METRICS = ("p50", "p95", "p99", "error_rate", "throughput")


@dataclass(frozen=True)
class Change:
    """One metric of one name: point estimates and a CI of the change.

    ``change`` is current/baseline - 1 for "ratio" metrics and current - baseline for
    error_rate ("diff"). The CI bounds are in the same unit as ``change``. When there is
    too little data for a CI, ``enough`` is False and ``shortfall`` says which condition
    was not met ("only 12 requests in the run, 200 needed"), so a skip can be acted on.
    """

    name: str
    metric: str
    baseline: float
    current: float
    change: float
    ci_low: float
    ci_high: float
    n_baseline: int
    n_current: int
    enough: bool
    shortfall: str = ""


def bin_index(latency_ms: np.ndarray) -> np.ndarray:
    """Index of the 1%-wide log bin of each latency."""
    safe = np.maximum(latency_ms, BIN_MIN_MS)
    idx = np.floor(np.log(safe / BIN_MIN_MS) / np.log(BIN_RATIO)).astype(np.int64)
    return np.clip(idx, 0, N_BINS - 1)


def _dense_ids(values: np.ndarray) -> np.ndarray:
    """Map integer labels to 0..k-1 in O(n) (labels span a small range: seconds, bins)."""
    shifted = values - values.min()
    present = np.bincount(shifted) > 0
    return (np.cumsum(present) - 1)[shifted]


def block_weights(rng: np.random.Generator, n_blocks: int, resamples: int) -> np.ndarray:
    """(resamples x n_blocks) counts: how often each block is drawn in each replicate."""
    draws = rng.integers(0, n_blocks, size=(resamples, n_blocks))
    flat = draws + np.arange(resamples)[:, None] * n_blocks
    return (
        np.bincount(flat.ravel(), minlength=resamples * n_blocks)
        .reshape(resamples, n_blocks)
        .astype(np.float64)
    )


def bootstrap_quantiles(
    t: np.ndarray,
    latency_ms: np.ndarray,
    qs: tuple[float, ...],
    block_s: float,
    resamples: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Block-bootstrap replicates of the quantiles: array (resamples x len(qs))."""
    block_id = _dense_ids(np.floor(t / block_s).astype(np.int64))
    bins = bin_index(latency_ms)
    used = np.flatnonzero(np.bincount(bins, minlength=N_BINS))
    lookup = np.zeros(N_BINS, dtype=np.int64)
    lookup[used] = np.arange(len(used))
    bin_id = lookup[bins]
    n_blocks, n_used = int(block_id.max()) + 1, len(used)
    hist = np.bincount(block_id * n_used + bin_id, minlength=n_blocks * n_used)
    hist = hist.reshape(n_blocks, n_used).astype(np.float64)
    reps = block_weights(rng, n_blocks, resamples) @ hist
    cum = np.cumsum(reps, axis=1)
    total = cum[:, -1]
    rows = np.arange(resamples)
    out = np.empty((resamples, len(qs)))
    for j, q in enumerate(qs):
        target = q * total
        pos = np.minimum((cum < target[:, None]).sum(axis=1), n_used - 1)
        before = np.where(pos > 0, cum[rows, np.maximum(pos - 1, 0)], 0.0)
        inside = np.maximum(reps[rows, pos], 1e-12)
        # Interpolate inside the bin (log-linearly) so replicates are not stuck to bin edges.
        frac = np.clip((target - before) / inside, 0.0, 1.0)
        out[:, j] = BIN_MIN_MS * BIN_RATIO ** (used[pos] + frac)
    return out


def bootstrap_rates(
    numer: np.ndarray, denom: np.ndarray, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Replicates of sum(numer)/sum(denom) over resampled blocks."""
    w = block_weights(rng, len(numer), resamples)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w @ numer) / (w @ denom)


def _rng(seed: int, *parts: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(p.encode()) for p in parts)])


def _window(run: Run, warmup_s: float) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """Drop the warm-up and shift time so that blocks start at the end of it."""
    s = run.samples[run.samples["t"] >= warmup_s]
    s = s.assign(t=s["t"] - warmup_s)
    c = run.counts[run.counts["second"] >= warmup_s]
    c = c.assign(second=c["second"] - warmup_s)
    return s, c, max(run.duration_s - warmup_s, 0.0)


def _block_counts(counts: pd.DataFrame, duration_s: float, block_s: float) -> pd.DataFrame:
    """Requests and errors per full block, including blocks with no request."""
    n_blocks = max(int(np.floor(duration_s / block_s)), 1)
    block = np.floor(counts["second"].to_numpy() / block_s).astype(np.int64)
    keep = block < n_blocks
    n = np.bincount(block[keep], weights=counts["n"].to_numpy()[keep], minlength=n_blocks)
    e = np.bincount(block[keep], weights=counts["errors"].to_numpy()[keep], minlength=n_blocks)
    return pd.DataFrame({"n": n, "errors": e})


def _interval(reps: np.ndarray, confidence: float) -> tuple[float, float]:
    finite = reps[np.isfinite(reps)]
    if finite.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _latency_changes(
    name: str,
    base: pd.DataFrame,
    cur: pd.DataFrame,
    metrics: tuple[str, ...],
    settings: Settings,
) -> list[Change]:
    out: list[Change] = []
    for column, prefix in (("latency_ms", ""), ("corrected_ms", "corrected_")):
        wanted = [m for m in metrics if m.startswith(prefix) and quantile_of(m) is not None]
        if prefix == "":
            wanted = [m for m in wanted if not m.startswith("corrected_")]
        if not wanted:
            continue
        qs = tuple(float(quantile_of(m) or 0.0) for m in wanted)
        nb, nc = len(base), len(cur)
        lacking = _shortfall(
            (nb, _blocks_with_requests(base, settings.block_s)),
            (nc, _blocks_with_requests(cur, settings.block_s)),
            f"blocks of {settings.block_s:g} s with requests",
            settings,
        )
        enough = not lacking
        point_b = np.quantile(base[column].to_numpy(), qs) if nb else np.full(len(qs), np.nan)
        point_c = np.quantile(cur[column].to_numpy(), qs) if nc else np.full(len(qs), np.nan)
        if enough:
            rb = bootstrap_quantiles(
                base["t"].to_numpy(),
                base[column].to_numpy(),
                qs,
                settings.block_s,
                settings.resamples,
                _rng(settings.seed, "base", name, column),
            )
            rc = bootstrap_quantiles(
                cur["t"].to_numpy(),
                cur[column].to_numpy(),
                qs,
                settings.block_s,
                settings.resamples,
                _rng(settings.seed, "cur", name, column),
            )
        for j, metric in enumerate(wanted):
            lo = hi = float("nan")
            # A high percentile rests on the few requests above it: with fewer than
            # min_tail of them it moves from run to run whatever the CI says.
            side, n_side = ("baseline", nb) if nb <= nc else ("run", nc)
            tail = n_side * (1.0 - qs[j])
            why = lacking
            if not why and tail < settings.min_tail:
                why = (
                    f"only {tail:.0f} requests above {metric} in the {side}, "
                    f"{settings.min_tail} needed"
                )
            if not why and not point_b[j] > 0:
                why = f"baseline {metric} is 0 ms, no ratio"
            if not why:
                lo, hi = _interval(rc[:, j] / rb[:, j] - 1.0, settings.confidence)
            out.append(
                Change(
                    name,
                    metric,
                    float(point_b[j]),
                    float(point_c[j]),
                    float(point_c[j] / point_b[j] - 1.0) if point_b[j] > 0 else float("nan"),
                    lo,
                    hi,
                    nb,
                    nc,
                    not why,
                    why,
                )
            )
    return out


def _blocks_with_requests(samples: pd.DataFrame, block_s: float) -> int:
    if samples.empty:
        return 0
    blocks = np.floor(samples["t"].to_numpy() / block_s).astype(np.int64)
    return int(np.count_nonzero(np.bincount(blocks - blocks.min())))


def _shortfall(
    base: tuple[int, int], cur: tuple[int, int], blocks_are: str, settings: Settings
) -> str:
    """Which minimum a comparison misses, as one phrase; "" when both sides have enough.

    ``base`` and ``cur`` are (requests, blocks); ``blocks_are`` says what was counted.
    """
    sides = (("baseline", *base), ("run", *cur))
    for side, n, _ in sides:
        if n < settings.min_samples:
            return f"only {n} requests in the {side}, {settings.min_samples} needed"
    for side, _, blocks in sides:
        if blocks < settings.min_blocks:
            return f"only {blocks} {blocks_are} in the {side}, {settings.min_blocks} needed"
    return ""


def _count_changes(
    name: str,
    base: pd.DataFrame,
    cur: pd.DataFrame,
    dur_b: float,
    dur_c: float,
    metrics: tuple[str, ...],
    settings: Settings,
) -> list[Change]:
    bb = _block_counts(base, dur_b, settings.block_s)
    bc = _block_counts(cur, dur_c, settings.block_s)
    nb, nc = int(bb["n"].sum()), int(bc["n"].sum())
    blocks_are = f"blocks of {settings.block_s:g} s"
    lacking = _shortfall((nb, len(bb)), (nc, len(bc)), blocks_are, settings)
    enough = not lacking
    out = []
    if "error_rate" in metrics:
        pb = bb["errors"].sum() / nb if nb else float("nan")
        pc = bc["errors"].sum() / nc if nc else float("nan")
        lo = hi = float("nan")
        if enough:
            rb = bootstrap_rates(
                bb["errors"].to_numpy(),
                bb["n"].to_numpy(),
                settings.resamples,
                _rng(settings.seed, "base-err", name),
            )
            rc = bootstrap_rates(
                bc["errors"].to_numpy(),
                bc["n"].to_numpy(),
                settings.resamples,
                _rng(settings.seed, "cur-err", name),
            )
            lo, hi = _interval(rc - rb, settings.confidence)
        out.append(Change(name, "error_rate", pb, pc, pc - pb, lo, hi, nb, nc, enough, lacking))
    if "throughput" in metrics:
        pb = nb / (len(bb) * settings.block_s)
        pc = nc / (len(bc) * settings.block_s)
        lo = hi = float("nan")
        if enough:
            ones_b, ones_c = np.ones(len(bb)), np.ones(len(bc))
            rb = bootstrap_rates(
                bb["n"].to_numpy(), ones_b, settings.resamples, _rng(settings.seed, "base-tp", name)
            )
            rc = bootstrap_rates(
                bc["n"].to_numpy(), ones_c, settings.resamples, _rng(settings.seed, "cur-tp", name)
            )
            lo, hi = _interval(rc / rb - 1.0, settings.confidence)
        out.append(
            Change(
                name,
                "throughput",
                pb,
                pc,
                pc / pb - 1.0 if pb > 0 else float("nan"),
                lo,
                hi,
                nb,
                nc,
                enough,
                lacking,
            )
        )
    return out


def _by_name(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {str(name): group for name, group in frame.groupby("name")}


def compare_runs(
    baseline: Run,
    current: Run,
    settings: Settings,
    metrics: tuple[str, ...] = DEFAULT_METRICS,
    names: tuple[str, ...] | None = None,
) -> pd.DataFrame:
    """Changes per name present in both runs, and overall (``ALL``); one row per metric.

    ``names`` restricts the per-name rows (``ALL`` is always included).
    """
    sb, cb, db = _window(baseline, settings.warmup_s)
    sc, cc, dc = _window(current, settings.warmup_s)
    lat_b, lat_c = _by_name(sb), _by_name(sc)
    cnt_b, cnt_c = _by_name(cb), _by_name(cc)
    common = sorted(set(lat_b) & set(lat_c))
    if names is not None:
        common = [n for n in common if n in names]
    changes: list[Change] = []
    groups: list[tuple[str, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]] = [
        (n, lat_b[n], lat_c[n], cnt_b[n], cnt_c[n]) for n in common
    ]
    all_cb = cb.groupby("second", as_index=False)[["n", "errors"]].sum()
    all_cc = cc.groupby("second", as_index=False)[["n", "errors"]].sum()
    groups.append((OVERALL, sb, sc, all_cb, all_cc))
    for name, lat_b, lat_c, cnt_b, cnt_c in groups:
        changes += _latency_changes(name, lat_b, lat_c, metrics, settings)
        changes += _count_changes(name, cnt_b, cnt_c, db, dc, metrics, settings)
    return pd.DataFrame([c.__dict__ for c in changes])
