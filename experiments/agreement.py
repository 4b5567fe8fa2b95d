"""Do runs of the same experiment on the same code agree, check by check?

A verdict that flips between identical runs is noise, not a finding. `agreement` lines
up the checks of several runs' verdict.json (phase label and metric/bound), each run's
word for it (ok, FAILED, SKIPPED), its value and sample count, and whether the words
agree; the recoveries and the overall verdict too. Pure: reports in, rows out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Row:
    phase: str
    check: str
    words: tuple[str, ...]  # one per run
    values: tuple[str, ...]  # "640 ms n=312", one per run ("-" where the run has none)

    @property
    def agrees(self) -> bool:
        return len(set(self.words)) == 1


def _word(check: dict[str, Any]) -> str:
    return "SKIPPED" if check.get("skipped") else "ok" if check["ok"] else "FAILED"


def _value(check: dict[str, Any]) -> str:
    value = check.get("value")
    shown = "-" if value is None else f"{value:.0f} ms" if check["metric"] == "p95_ms" else (
        f"{100 * value:.1f}%" if "rate" in check["metric"] or "errors" in check["metric"]
        else f"{value:.1f}"
    )  # fmt: skip
    undecided = " (undecided)" if check.get("undecided") else ""
    return f"{shown} n={check.get('samples', 0)}{undecided}"


def agreement(reports: Sequence[dict[str, Any]]) -> list[Row]:
    """One row per check, recovery and the verdict, in the first run's order."""
    keyed: list[dict[tuple[str, str], tuple[str, str]]] = []
    order: list[tuple[str, str]] = []
    for report in reports:
        found: dict[tuple[str, str], tuple[str, str]] = {}
        for phase in report["verdict"]["phases"]:
            for c in phase["checks"]:
                found[phase["label"], f"{c['metric']} {c['bound']}"] = (_word(c), _value(c))
        for r in report["verdict"]["recoveries"]:
            seconds = "never" if r["seconds"] is None else f"{r['seconds']:.1f}s"
            found[f"recovery #{r['episode']}", r["what"]] = ("ok" if r["ok"] else "FAILED", seconds)
        word = report["verdict"].get("word") or ("PASS" if report["verdict"]["ok"] else "FAIL")
        found["verdict", "phases and recoveries"] = (word, "")
        keyed.append(found)
        order += [k for k in found if k not in order]
    return [
        Row(
            phase,
            check,
            tuple(run.get((phase, check), ("absent", "-"))[0] for run in keyed),
            tuple(run.get((phase, check), ("absent", "-"))[1] for run in keyed),
        )
        for phase, check in order
    ]


def render(rows: Sequence[Row], runs: Sequence[str]) -> str:
    """The rows as a plain-text table, one column per run, and a closing count."""
    lines = [f"runs: {', '.join(runs)}", ""]
    for row in rows:
        cells = "  ".join(f"{w} {v}".strip() for w, v in zip(row.words, row.values, strict=True))
        mark = "agree" if row.agrees else "DIFFER"
        lines.append(f"{mark:<6} {row.phase[:40]:<40} {row.check[:40]:<40} | {cells}")
    differ = sum(not r.agrees for r in rows)
    lines.append("")
    lines.append(f"{len(rows) - differ} of {len(rows)} verdicts agree across {len(runs)} runs")
    return "\n".join(lines)
