"""The audit's rules on small synthetic inputs: each kind of loss is counted and named."""

from __future__ import annotations

import json
from pathlib import Path

from experiments.audit_contract import CablecastView, Expected, expectations, judge, read_ledger
from experiments.audit_tables import judge_tables, read_acks
from experiments.experiment import Audit
from workload.routes import Profile

NOW = 10_000.0


def row(vod_id: int, **fields: object) -> dict:
    base = {
        "id": vod_id,
        "title": f"t{vod_id}",
        "status": "uploaded",
        "version": 1,
        "cablecast_show_id": None,
        "cablecast_vod_id": None,
        "job_id": None,
        "updated_at": NOW - 1,
    }
    return base | fields


def test_the_ledger_folds_into_the_last_promise() -> None:
    events = [
        {"ts": 1, "kind": "created", "id": 1, "version": 1, "title": "a", "status": "uploaded"},
        {"ts": 2, "kind": "updated", "id": 1, "version": 2, "fields": {"title": "b"}},
        {
            "ts": 3,
            "kind": "published",
            "id": 1,
            "version": 5,
            "cablecast_show_id": 7,
            "cablecast_vod_id": 9,
        },
        {"ts": 1, "kind": "created", "id": 2, "version": 1, "title": "c", "status": "uploaded"},
        {"ts": 4, "kind": "deleted", "id": 2},
    ]
    folded = expectations(events)
    assert folded[1].fields == {"title": "b"} and folded[1].version == 5
    assert folded[1].published == (7, 9)
    assert not folded[2].exists


def test_a_clean_run_has_no_findings() -> None:
    expected = {1: Expected(1, version=1, fields={"title": "t1"})}
    result = judge(
        expected,
        {1: row(1)},
        {1: (1, {"title": "t1", "status": "uploaded"})},
        CablecastView({}, {}),
        [],
        NOW,
        Audit(),
    )
    assert result.ok and result.counts() == {
        "lost": 0,
        "duplicated": 0,
        "inconsistent": 0,
        "stuck": 0,
    }


def test_lost_writes_are_named() -> None:
    expected = {
        1: Expected(1, version=1),  # row missing
        2: Expected(2, version=3),  # row at version 2
        3: Expected(3, version=2, fields={"title": "new"}),  # update lost
        4: Expected(4, exists=False),  # delete lost
        5: Expected(5, version=4, published=(7, 9)),  # not published in the database
    }
    rows = {
        2: row(2, version=2),
        3: row(3, version=2, title="old"),
        4: row(4),
        5: row(5, version=4),
    }
    result = judge(expected, rows, None, None, None, NOW, Audit())
    problems = {f.id: f.problem for f in result.lost}
    assert sorted(problems) == [1, 2, 3, 4, 5]
    assert "not in the database" in problems[1]
    assert "version 2 in the database < 3 acknowledged" in problems[2]
    assert "title is 'old', acknowledged 'new'" in problems[3]
    assert "deleted" in problems[4]
    assert "told published, database says uploaded" in problems[5]
    assert not result.ok
    assert "Cablecast not audited: no Cablecast URL" in result.notes


def test_cablecast_must_hold_each_published_vod_exactly_once() -> None:
    published = {"status": "published", "version": 5, "cablecast_show_id": 7, "cablecast_vod_id": 9}
    expected = {i: Expected(i, version=5, published=(7 + i, 9)) for i in (1, 2, 3)}
    rows = {i: row(i, **published | {"cablecast_show_id": 7 + i}) for i in (1, 2, 3)}
    view = CablecastView(
        shows_by_vod={1: [8], 2: [9, 10]},  # vod 3: no show at all
        vods_by_show={8: [9, 11], 9: [9]},
    )
    result = judge(expected, rows, None, view, None, NOW, Audit())
    assert {(f.id, f.problem) for f in result.duplicated} == {
        (1, "2 Cablecast VODs: [9, 11]"),
        (2, "2 Cablecast shows: [9, 10]"),
    }
    assert [(f.id, f.problem) for f in result.lost] == [
        (3, "published but no Cablecast show carries its marker")
    ]


def test_cache_disagreements_and_stuck_jobs_are_named() -> None:
    expected = {i: Expected(i, version=1) for i in (1, 2, 3)} | {4: Expected(4, exists=False)}
    rows = {1: row(1, version=3), 2: row(2), 3: row(3, status="transcoding", updated_at=NOW - 500)}
    cache = {1: (2, {"title": "t1"}), 2: (2**62, None), 4: (1, {"title": "t4"})}
    pending = [("1-0", 3, 42.0), ("2-0", 99, 500.0)]
    result = judge(expected, rows, cache, None, pending, NOW, Audit(stuck_after=60))
    assert {(f.id, f.problem) for f in result.inconsistent} == {
        (1, "cached version 2, database version 3"),
        (2, "cache says deleted, the database row exists"),
        (4, "cached (version 1) but not in the database"),
    }
    assert [(f.id, f.problem) for f in result.stuck] == [
        (3, "transcoding for 500s (bound 60s)"),
        (3, "job 1-0 delivered 42s ago, never acknowledged"),
    ]
    assert "job 2-0 (VOD 99, not this run's) pending for 500s" in result.notes
    assert not result.ok
    assert judge(expected, rows, cache, None, pending, NOW, Audit(inconsistent=3, stuck=2)).ok


def created(vod_id: int, ts: float = 1.0, **fields: object) -> dict:
    base = {"ts": ts, "kind": "created", "id": vod_id, "idempotency_key": "k", "version": 1}
    return base | {"status": "uploaded", "title": f"t{vod_id}"} | fields


def test_kept_promises_in_a_ledger_give_no_findings() -> None:
    ledger = [
        created(1),
        created(2),
        {"ts": 2.0, "kind": "updated", "id": 2, "version": 2, "fields": {"title": "New"}},
        created(3),
        {"ts": 3.0, "kind": "deleted", "id": 3},
    ]
    rows = {1: row(1), 2: row(2, title="New", version=2)}
    result = judge(expectations(ledger), rows, None, None, None, NOW, Audit())
    assert result.counts() == {"lost": 0, "duplicated": 0, "inconsistent": 0, "stuck": 0}


def test_worker_progress_is_not_a_finding_but_wrong_cablecast_ids_are() -> None:
    published = {"ts": 5.0, "kind": "published", "id": 2, "version": 4}
    ledger = [created(1), created(2), published | {"cablecast_show_id": 7, "cablecast_vod_id": 9}]
    moved_on = row(1, status="captioning", version=3, job_id="j")
    wrong = row(2, status="published", version=4, cablecast_show_id=7, cablecast_vod_id=8)
    result = judge(expectations(ledger), {1: moved_on, 2: wrong}, None, None, None, NOW, Audit())
    assert result.lost == [] and result.stuck == []
    assert [(f.id, f.problem) for f in result.inconsistent] == [
        (2, "Cablecast ids in the database (7, 8) differ from those told (7, 9)")
    ]


def test_the_ledgers_of_all_processes_merge_in_time_order(tmp_path: Path) -> None:
    (tmp_path / "ledger-1.jsonl").write_text(json.dumps(created(1, ts=3.0)) + "\n")
    (tmp_path / "ledger-2.jsonl").write_text(
        json.dumps(created(2, ts=1.0)) + "\n" + '{"ts": 4, "kind": "crea'  # torn last line
    )
    assert [e["id"] for e in read_ledger(tmp_path)] == [2, 1]


def test_a_profile_audited_by_tables_names_each_write_missing_from_its_table(
    tmp_path: Path,
) -> None:
    """The Flask app's rules (config/routes/archivist-flask.toml) on a ledger of its writes."""
    rules = Profile.load("archivist-flask").audit
    assert rules is not None and rules.checks == "tables"
    acks = [
        {"ts": 1, "kind": "ack", "request": "POST /api/upload", "values": {"file_id": "f1"}},
        {"ts": 2, "kind": "ack", "request": "POST /api/upload", "values": {"file_id": "f2"}},
        {
            "ts": 3,
            "kind": "ack",
            "request": "POST /api/vod/publish/{id}",
            "values": {"vod_id": 77, "{id}": "t9"},
        },
        {"ts": 4, "kind": "ack", "request": "POST /api/vod/create", "values": {}},
    ]
    (tmp_path / "ledger-1.jsonl").write_text("".join(json.dumps(a) + "\n" for a in acks))
    assert read_acks(tmp_path) == acks
    present = {
        ("digital_files", "id"): {"f1"},
        ("cablecast_vods", "id"): {"77"},
        ("cablecast_shows", "transcription_id"): set(),
    }
    result = judge_tables(rules, read_acks(tmp_path), present, Audit())
    assert [(f.id, f.problem) for f in result.lost] == [
        ("f2", "POST /api/upload acknowledged, but no digital_files row has id = 'f2'"),
        (
            "t9",
            "POST /api/vod/publish/{id} acknowledged, but no cablecast_shows row has "
            "transcription_id = 't9'",
        ),
    ]
    assert result.checked == {
        "acknowledged": 4,
        "digital_files.id": 2,
        "cablecast_vods.id": 1,
        "cablecast_shows.transcription_id": 1,
    }
    # The not_durable acknowledgement is a finding (analysis.answers_run), not a note.
    assert not any("vod/create" in n for n in result.notes)
    assert [f.request for f in result.lost] == ["POST /api/upload", "POST /api/vod/publish/{id}"]
    assert not result.ok
