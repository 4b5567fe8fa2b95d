"""The ledger audit on small, hand-made ledgers and rows (the pure part, no database)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from locustfiles.ledger_audit import audit, load_ledger, main


def row(vod_id: int, **kw: object) -> dict[str, object]:
    base = {"id": vod_id, "title": "T", "status": "uploaded", "version": 1, "job_id": None}
    return {**base, "cablecast_show_id": None, "cablecast_vod_id": None, **kw}


def created(vod_id: int, ts: float = 1.0, **kw: object) -> dict[str, object]:
    base = {"ts": ts, "kind": "created", "id": vod_id, "idempotency_key": "k"}
    return {**base, "version": 1, "status": "uploaded", "title": "T", **kw}


def test_kept_promises_give_no_findings() -> None:
    ledger = [
        created(1),
        created(2),
        {"ts": 2.0, "kind": "updated", "id": 2, "version": 2, "fields": {"title": "New"}},
        created(3),
        {"ts": 3.0, "kind": "deleted", "id": 3},
    ]
    rows = {1: row(1), 2: row(2, title="New", version=2)}
    assert audit(ledger, rows) == []


def test_lost_create_and_resurrected_delete_are_found() -> None:
    ledger = [created(1), created(2), {"ts": 2.0, "kind": "deleted", "id": 2}]
    findings = audit(ledger, {2: row(2)})
    assert findings == [
        "VOD 1: created (acknowledged) but missing from the database",
        "VOD 2: deleted (acknowledged) but still in the database",
    ]


def test_lost_update_is_found() -> None:
    ledger = [
        created(1),
        {"ts": 2.0, "kind": "updated", "id": 1, "version": 2, "fields": {"title": "B"}},
    ]
    findings = audit(ledger, {1: row(1, title="A", version=1)})
    assert findings == [
        "VOD 1: version 1 < 2 told at updated",
        "VOD 1: title is 'A', updated told 'B'",
    ]


def test_worker_progress_is_not_a_finding_but_wrong_cablecast_ids_are() -> None:
    ledger = [created(1), created(2)]
    moved_on = row(1, status="transcoding", version=3, job_id="j")
    published = {"ts": 5.0, "kind": "published", "id": 2, "version": 4}
    ledger.append({**published, "cablecast_show_id": 7, "cablecast_vod_id": 9})
    wrong = row(2, status="published", version=4, cablecast_show_id=7, cablecast_vod_id=8)
    assert audit(ledger, {1: moved_on, 2: wrong}) == [
        "VOD 2: cablecast_vod_id is 8, published told 9"
    ]


def test_load_merges_processes_in_time_order(tmp_path: Path) -> None:
    (tmp_path / "ledger-1.jsonl").write_text(json.dumps(created(1, ts=3.0)) + "\n")
    (tmp_path / "ledger-2.jsonl").write_text(json.dumps(created(2, ts=1.0)) + "\n")
    assert [e["id"] for e in load_ledger(tmp_path)] == [2, 1]


def test_cli_refuses_a_corrupt_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ledger-1.jsonl").write_text("{not json\n")
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), "--database-url", "postgresql://nowhere"])
    assert exit_info.value.code == 2
    assert "ledger-1.jsonl:1: not a JSON line" in capsys.readouterr().err
