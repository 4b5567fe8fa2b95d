"""The ledger keeps every acknowledged write, also those made while Locust is quitting."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_python

# In a fresh interpreter: importing Locust monkey-patches the process (gevent).
LEDGER_SCRIPT = """
from pathlib import Path
from workload.ledger import Ledger

ledger = Ledger()
ledger.path = Path({path!r})
ledger.record("created", 1)
assert not ledger.path.exists(), "buffered until a flush"
ledger.close()  # Locust's quitting: on SIGTERM it comes before the users stop
print(len(ledger.path.read_text().splitlines()))
ledger.record("deleted", 1)  # a user still finishing its task
ledger.record_ack("POST /api/upload", {{"file_id": "f1"}})
"""


def test_writes_acknowledged_after_quit_reach_the_file_without_another_flush(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger-1.jsonl"
    assert run_python(LEDGER_SCRIPT.format(path=str(path))) == "1"
    kinds = [json.loads(line)["kind"] for line in path.read_text().splitlines()]
    assert kinds == ["created", "deleted", "ack"]
