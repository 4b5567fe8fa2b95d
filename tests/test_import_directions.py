"""Which top-level packages may import which (the layout's rules, checked on the source).

workload/ is the Locust plumbing under the locustfiles: it may use testbed and faults'
client side, never the analysis, the locustfiles or the experiments above it; the
reference stack (testbed/) uses none of the workload.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "workload": ("analysis", "locustfiles", "experiments"),
    "testbed": ("workload",),
}


def imported_packages(path: Path) -> set[str]:
    """Top-level packages a module imports anywhere (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_above_it(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in sorted(imported_packages(path) & set(FORBIDDEN[package]))
    ]
    assert not wrong, "\n".join(wrong)
