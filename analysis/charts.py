"""Matplotlib figures of a run (Agg backend, no display). Each function takes frames and
returns a Figure; the HTML report embeds them."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

SIZE = (9.0, 3.8)


def _shade_faults(ax: Axes, faults: pd.DataFrame) -> None:
    for i, f in enumerate(faults.itertuples()):
        label = f"fault: {f.what}" if f.link in f.what else f"fault: {f.link} {f.what}"
        ax.axvspan(f.start, f.end, color="tab:red", alpha=0.12, label=label if i < 6 else None)


def latency_over_time(ts: pd.DataFrame, faults: pd.DataFrame, prefix: str = "") -> Figure:
    fig, ax = plt.subplots(figsize=SIZE)
    for col in ("p50", "p95", "p99"):
        ax.plot(ts.index, ts[f"{prefix}{col}"], label=col, linewidth=1)
    _shade_faults(ax, faults)
    ax.set(xlabel="seconds since start", ylabel="latency (ms)", yscale="log")
    ax.set_title(("Corrected" if prefix else "Service") + " latency percentiles per second")
    ax.legend(loc="best", fontsize="small", framealpha=0.6)
    fig.tight_layout()
    return fig


def throughput_over_time(ts: pd.DataFrame, faults: pd.DataFrame) -> Figure:
    fig, ax = plt.subplots(figsize=SIZE)
    ax.plot(ts.index, ts["rps"], label="requests/s", linewidth=1)
    ax.plot(ts.index, ts["errors_per_s"], label="errors/s", color="tab:red", linewidth=1)
    _shade_faults(ax, faults)
    ax.set(xlabel="seconds since start", ylabel="per second", title="Throughput and errors")
    ax.legend(loc="best", fontsize="small", framealpha=0.6)
    fig.tight_layout()
    return fig


def service_vs_corrected(ts: pd.DataFrame, faults: pd.DataFrame) -> Figure:
    """Side by side: latency as served vs latency from the intended start."""
    fig, axes = plt.subplots(1, 2, figsize=(SIZE[0], SIZE[1]), sharey=True)
    for ax, prefix, title in ((axes[0], "", "service"), (axes[1], "corrected_", "corrected")):
        for col in ("p50", "p95", "p99"):
            ax.plot(ts.index, ts[f"{prefix}{col}"], label=col, linewidth=1)
        _shade_faults(ax, faults)
        ax.set(xlabel="seconds since start", yscale="log", title=f"{title} latency")
    axes[0].set_ylabel("ms")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize="small")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


RESOURCE_PANELS = (  # (source, metric, title) of analysis.resources, in reading order
    ("postgres", "connections", "PostgreSQL connections (app | state)"),
    ("process", "rss_mb", "RSS of each app part (MB)"),
    ("process", "fds", "open files of each app part"),
    ("process", "threads", "threads of each app part"),
    ("redis", "clients", "Redis connected clients"),
    ("redis", "used_memory_mb", "Redis used memory (MB)"),
)
RESOURCE_LINES = 8  # per panel; the series that reached the highest values


def resources_over_time(wide: pd.DataFrame, faults: pd.DataFrame, t0: float) -> Figure:
    """One panel per resource that was sampled (analysis.resources.series), seconds since
    ``t0``; a gap in a source breaks its lines; fault windows shaded."""
    panels = [p for p in RESOURCE_PANELS if any(c[:2] == p[:2] for c in wide.columns)]
    rows = max(1, (len(panels) + 1) // 2)
    fig, axes = plt.subplots(rows, 2, figsize=(SIZE[0], 2.6 * rows + 0.6), squeeze=False)
    x = wide.index.to_numpy(dtype=float) - t0
    for ax, (source, metric, title) in zip(axes.flat, panels, strict=False):
        columns = [c for c in wide.columns if c[:2] == (source, metric)]
        columns.sort(key=lambda c: -np.nanmax(wide[c].to_numpy(dtype=float)))
        for column in columns[:RESOURCE_LINES]:
            ax.plot(x, wide[column].to_numpy(dtype=float), label=column[2] or metric, linewidth=1)
        _shade_faults(ax, faults)
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel("seconds since start", fontsize="small")
        ax.legend(loc="best", fontsize="x-small", framealpha=0.6)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def latency_cdfs(base: np.ndarray, cur: np.ndarray) -> Figure:
    """Empirical CDFs on a fixed probability grid (cheap for millions of samples)."""
    grid = np.linspace(0.0, 1.0, 1001)
    fig, ax = plt.subplots(figsize=SIZE)
    ax.plot(np.quantile(base, grid), grid, label="baseline")
    ax.plot(np.quantile(cur, grid), grid, label="current")
    ax.set(xscale="log", xlabel="latency (ms)", ylabel="fraction of requests")
    ax.set_title("Latency CDF, baseline vs current")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def change_with_ci(changes: pd.DataFrame, metric: str = "p95") -> Figure:
    """Per name: relative change of ``metric`` with its confidence interval."""
    rows = changes[changes["metric"] == metric].dropna(subset=["change"])
    fig, ax = plt.subplots(figsize=(SIZE[0], 0.35 * len(rows) + 1.2))
    y = np.arange(len(rows))
    pct = 100 * rows["change"].to_numpy()
    lo = 100 * rows["ci_low"].to_numpy()
    hi = 100 * rows["ci_high"].to_numpy()
    err = np.vstack([np.nan_to_num(pct - lo), np.nan_to_num(hi - pct)])
    ax.errorbar(pct, y, xerr=err, fmt="o", capsize=3)
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_yticks(y, rows["name"].tolist())
    ax.set(xlabel=f"change of {metric} vs baseline (%)", title=f"{metric} change with CI")
    fig.tight_layout()
    return fig


def trend(history: pd.DataFrame, metric: str, change_points: list[int]) -> Figure:
    fig, ax = plt.subplots(figsize=SIZE)
    ax.plot(np.arange(len(history)), history[metric], marker="o")
    for cp in change_points:
        ax.axvline(cp - 0.5, color="tab:red", linestyle="--")
    ax.set_xticks(np.arange(len(history)), history["run"].tolist(), rotation=60, fontsize=6)
    ax.set(ylabel=metric, title=f"{metric} over runs (dashed: change points)")
    fig.tight_layout()
    return fig


def to_data_uri(fig: Figure, dpi: int = 80) -> str:
    """PNG as a data: URI, then close the figure (keeps memory flat in long reports)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def capacity_steps(table: pd.DataFrame, knee_users: int | None, p95_limit: float | None) -> Figure:
    """Requests/s and p95 per step of a step load, the knee marked (analysis.capacity)."""
    fig, ax = plt.subplots(figsize=SIZE)
    ax.plot(table["users"], table["rps"], marker="o", label="requests/s")
    ax.set(xlabel="users", ylabel="requests/s", title="Capacity: step load")
    right = ax.twinx()
    right.plot(table["users"], table["p95_ms"], marker="s", color="tab:orange", label="p95 ms")
    right.set_ylabel("p95 (ms)")
    if p95_limit is not None:
        right.axhline(p95_limit, color="tab:orange", linestyle=":", label="p95 bound")
    if knee_users is not None:
        ax.axvline(knee_users, color="tab:red", linestyle="--", label=f"knee: {knee_users} users")
    left_h, left_l = ax.get_legend_handles_labels()
    right_h, right_l = right.get_legend_handles_labels()
    ax.legend(left_h + right_h, left_l + right_l, loc="upper left", fontsize="small")
    fig.tight_layout()
    return fig
