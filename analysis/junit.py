"""JUnit XML of the gate: one test case per check, so CI shows each threshold."""

from __future__ import annotations

import pandas as pd
from junitparser import Failure, JUnitXml, Skipped, TestCase, TestSuite

from analysis.display import NONE, checks_view


def _describe(row: pd.Series, shown: pd.Series) -> str:
    """The threshold, why, and the values as the Markdown table shows them."""
    parts = [f"{row['threshold']}: {row['detail']}"]
    for key in ("observed", "baseline", "change [CI]"):
        if shown[key] != NONE:
            parts.append(f"{key} {shown[key]}")
    return "; ".join(parts)


def gate_junit(checks: pd.DataFrame, suite_name: str = "performance-gate") -> str:
    """The checks as a JUnit XML document (string)."""
    suite = TestSuite(suite_name)
    view = checks_view(checks)
    for (_, row), (_, shown) in zip(checks.iterrows(), view.iterrows(), strict=True):
        case = TestCase(str(row["check"]), classname=f"gate.{row['kind']}")
        text = _describe(row, shown)
        if row["status"] == "fail":
            case.result = [Failure(message=text)]
        elif row["status"] == "skip":
            case.result = [Skipped(message=text)]
        case.system_out = text
        suite.add_testcase(case)
    xml = JUnitXml()
    xml.add_testsuite(suite)
    xml.update_statistics()
    raw = xml.tostring()
    return raw.decode() if isinstance(raw, bytes) else str(raw)
