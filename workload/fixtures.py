"""--fixtures: the ids of the test data the stack seeded for a hosted app, for its workflows.

A real app's list routes may not tell the workload what exists (the Flask Archivist's
GET /api/transcriptions answers [] whatever its table holds), so a workload that learnt
ids only there would publish ids the app does not know. The stack that seeded the data
(testbed/hosted/fixtures.py) writes `<state_dir>/fixtures.json`; the experiment runner
passes its path, and without the option the local stack's own file is used when the run
targets that stack.

Only the standard library here (tests read fixtures without Locust); what reads Locust's
options is workload/fixtures_wiring.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES_FILE = "fixtures.json"  # as testbed/hosted/fixtures.py writes it


def add_fixtures(parser: Any) -> None:
    if "--fixtures" in parser._option_string_actions:
        return
    parser.add_argument(
        "--fixtures",
        default="",
        include_in_web_ui=False,
        help="The stack's fixtures.json: ids of the test data seeded for a hosted app, "
        "which the workflows use (default: that of the stack of --stack-config, when the "
        "run targets it)",
    )


class FixturesError(Exception):
    """The fixtures file cannot be read; the message names it."""


def read_fixtures(path: Path) -> dict[str, tuple[str, ...]]:
    """The ids per fixture name of a fixtures.json, checked."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FixturesError(f"--fixtures {path}: cannot read it: {exc.strerror}") from None
    except ValueError as exc:
        raise FixturesError(f"--fixtures {path}: not JSON: {exc}") from None
    fixtures = data.get("fixtures") if isinstance(data, dict) else None
    if not isinstance(fixtures, dict) or not all(
        isinstance(ids, list) and all(isinstance(i, str) for i in ids) for ids in fixtures.values()
    ):
        raise FixturesError(
            f'--fixtures {path}: want {{"fixtures": {{"name": ["id", ...]}}}} '
            "(as the stack writes it)"
        )
    return {str(name): tuple(ids) for name, ids in fixtures.items()}
