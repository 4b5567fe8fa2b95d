"""JUnit XML of the gate: one test case per check, so CI shows each threshold."""

from __future__ import annotations

import math

import pandas as pd
from junitparser import Failure, JUnitXml, Skipped, TestCase, TestSuite


def _describe(row: pd.Series) -> str:
    parts = [f"{row['threshold']}: {row['detail']}"]
    for key in ("observed", "baseline", "change", "ci_low", "ci_high"):
        value = row.get(key)
        if isinstance(value, float) and not math.isnan(value):
            parts.append(f"{key}={value:.6g}")
    return "; ".join(parts)


def gate_junit(checks: pd.DataFrame, suite_name: str = "performance-gate") -> str:
    """The checks as a JUnit XML document (string)."""
    suite = TestSuite(suite_name)
    for _, row in checks.iterrows():
        case = TestCase(str(row["check"]), classname=f"gate.{row['kind']}")
        text = _describe(row)
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
