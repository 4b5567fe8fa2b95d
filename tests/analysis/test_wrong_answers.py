"""Answers held to the data on small inputs: each rule finds its wrong answer and stays quiet
where the data may legitimately differ; acknowledged writes nothing holds are findings."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.cli import main
from analysis.findings import to_text
from analysis.findings_run import run_findings
from analysis.synthetic import write_run
from analysis.wrong_answers import NEVER_STORED, WRONG_ANSWER, never_stored, problem, wrong_answers
from workload.answer_rules import AnswerCheck, load_answer_checks, observed, profile_file
from workload.tomlconfig import ConfigError

T0 = 1_800_000_000.0
NO_FAULTS = pd.DataFrame(columns=["start", "end", "link", "what"])
TRANSCRIPTIONS = AnswerCheck(
    "transcriptions", "list", "table", table="transcription_results", noun="transcriptions"
)
SHOWS = AnswerCheck("cablecast_shows", "list", "cablecast", items="shows", collection="shows")
VOD = AnswerCheck("get_vod", "item", "table", table="vods", version="version", fields=("title",))
FILE = AnswerCheck("get_file", "item", "table", record="data", table="digital_files",
                   fields=("city",))  # fmt: skip


def held(ids: list[str]) -> dict[str, object]:
    return {"count": len(ids), "ids": ids, "complete": True}


def test_an_empty_list_while_the_table_held_rows_before_the_run_is_wrong() -> None:
    truth = {"before": {"transcriptions": held([f"t{i}" for i in range(12)])}}
    assert problem(TRANSCRIPTIONS, {"n": 0, "ids": []}, truth) == (
        "[] while the database held 12 transcriptions when the run started"
    )
    # Nothing held before the run: an empty list may be right.
    assert problem(TRANSCRIPTIONS, {"n": 0}, {"before": {"transcriptions": held([])}}) == ""
    assert problem(TRANSCRIPTIONS, {"n": 2, "ids": ["t1", "t2"]}, truth) == ""


def test_a_listed_id_the_store_never_held_is_wrong_and_one_added_during_the_run_is_not() -> None:
    truth = {"before": {"cablecast_shows": held(["1", "2"])},
             "after": {"cablecast_shows": held(["1", "2", "3"])}}  # fmt: skip
    assert problem(SHOWS, {"n": 2, "ids": [1, 3]}, truth) == ""
    assert problem(SHOWS, {"n": 2, "ids": [1, 99]}, truth) == (
        "id 99, which the Cablecast simulator never held"
    )
    partial = {"before": {"cablecast_shows": {**held(["1"]), "complete": False}},
               "after": {"cablecast_shows": held(["1"])}}  # fmt: skip
    assert problem(SHOWS, {"n": 1, "ids": [99]}, partial) == ""  # too many ids to tell


def test_a_record_read_is_judged_against_its_row_at_the_same_version_only() -> None:
    truth = {"after": {"get_vod": {"rows": {"7": {"id": 7, "version": 3, "title": "Budget"}}}}}

    def seen(version: int, title: str, told: int = 7) -> dict[str, object]:
        return {"n": 1, "path_id": 7, "id": told, "version": version, "fields": {"title": title}}

    assert problem(VOD, seen(3, "Budget"), truth) == ""
    assert problem(VOD, seen(2, "Old title"), truth) == ""  # an older state of the row
    assert problem(VOD, seen(3, "Budget (copy)"), truth) == (
        "title 'Budget (copy)' while its vods row has 'Budget' (version 3)"
    )
    assert problem(VOD, seen(4, "Budget"), truth) == "version 4 while its vods row is at 3"
    assert problem(VOD, seen(3, "Budget", told=8), truth) == "id 8 answered for 7"
    assert problem(VOD, {"n": 1, "path_id": 9, "id": 9, "version": 1}, truth) == ""  # deleted


def test_a_record_without_versions_must_agree_with_its_row() -> None:
    body = {"success": True, "data": {"id": "f1", "city": "Oakdale", "size": 3}}
    seen = observed(FILE, body, "f1")
    assert seen == {"n": 1, "path_id": "f1", "id": "f1", "fields": {"city": "Oakdale"}}
    rows = {"after": {"get_file": {"rows": {"f1": {"id": "f1", "city": "Mahtomedi"}}}}}
    assert problem(FILE, seen, rows) == "city 'Oakdale' while its digital_files row has 'Mahtomedi'"
    assert observed(FILE, {"error": "File not found"}, "f1")["n"] is None  # not judged here


def test_wrong_answers_are_counted_per_route_with_the_first_as_example() -> None:
    truth = {"before": {"transcriptions": held(["a", "b"])}}
    seen = [
        {"ts": T0 + 5, "route": "transcriptions", "n": 0, "ids": []},
        {"ts": T0 + 2, "route": "transcriptions", "n": 0, "ids": []},
        {"ts": T0 + 3, "route": "transcriptions", "n": 2, "ids": ["a", "b"]},
        {"ts": T0 + 4, "route": "transcriptions", "n": None},
    ]
    endpoints = {"transcriptions": "GET /api/transcriptions"}
    [row] = wrong_answers([TRANSCRIPTIONS], endpoints, seen, truth, NO_FAULTS, T0)
    assert (row["kind"], row["endpoint"], row["count"], row["requests"]) == (
        WRONG_ANSWER, "GET /api/transcriptions", 2, 3,
    )  # fmt: skip
    assert row["first_s"] == 2.0 and row["fault"] == "no fault"
    assert row["detail"] == "[] while the database held 2 transcriptions when the run started"
    faults = pd.DataFrame(
        {"start": [T0 + 4.5], "end": [T0 + 6], "link": ["postgres"], "what": ["postgres down"]}
    )
    rows = wrong_answers([TRANSCRIPTIONS], endpoints, seen, truth, faults, T0, grace_s=0)
    assert sorted((r["fault"], r["count"]) for r in rows) == [("no fault", 1), ("postgres down", 1)]
    assert wrong_answers([TRANSCRIPTIONS], endpoints, seen[2:], truth, NO_FAULTS, T0) == []


def test_acknowledged_writes_nothing_holds_are_never_stored_with_count_and_an_example() -> None:
    def ack(t: float, request: str, field: str, value: str) -> dict[str, object]:
        return {"ts": T0 + t, "request": request, "values": {field: value}, "status": 200}

    acks = [
        ack(3, "POST /api/vod/create", "vod_id", "u2"),
        ack(1, "POST /api/vod/create", "vod_id", "u1"),
        ack(2, "POST /api/upload", "file_id", "f1"),
        ack(4, "POST /api/upload", "file_id", "f2"),
    ]
    missing = [{"request": "POST /api/upload", "id": "f2", "problem": "no digital_files row"}]
    create, upload = never_stored({"POST /api/vod/create": "vod_id"}, acks, missing, NO_FAULTS, T0)
    assert (create["kind"], create["endpoint"], create["count"], create["requests"]) == (
        NEVER_STORED, "POST /api/vod/create", 2, 2,
    )  # fmt: skip
    assert create["detail"] == (
        "acknowledged, never stored: the app keeps nothing for it; e.g. vod_id 'u1'"
    )
    assert create["first_s"] == 1.0
    assert (upload["count"], upload["requests"], upload["first_s"]) == (1, 2, 4.0)
    assert upload["detail"] == "acknowledged, never stored: no digital_files row"
    assert never_stored({"POST /api/vod/create": "vod_id"}, acks[2:], [], NO_FAULTS, T0) == []


def test_a_profile_with_a_bad_answers_entry_is_refused_with_the_file_named(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[routes]\nx = "GET /x"\n[[answers]]\nroute = "y"\nkind = "list"\n')
    with pytest.raises(ConfigError, match=r"p.toml: answers\[0\].route 'y' is not in \[routes\]"):
        load_answer_checks(path)
    assert [c.route for c in load_answer_checks(profile_file("contract"))] == ["get_vod"]


def test_a_run_folder_lists_its_wrong_answers_and_never_stored_writes(
    tmp_path: Path, capsys
) -> None:
    rows = [
        {"t_start": T0 + t, "name": "/api/transcriptions", "type": "GET", "latency_us": 9000,
         "ok": True, "status": 200}
        for t in range(5)
    ]  # fmt: skip
    run = write_run(tmp_path / "run", pd.DataFrame(rows),
                    meta={"start": T0, "options": {"routes": "archivist-flask"}})  # fmt: skip
    (run / "observations-1.jsonl").write_text(
        "".join(
            json.dumps({"ts": T0 + t, "route": "transcriptions", "n": 0, "ids": []}) + "\n"
            for t in range(5)
        )
    )
    ids = [f"t{i}" for i in range(12)]
    (run / "answers-truth.json").write_text(
        json.dumps({"before": {"transcriptions": held(ids)}, "after": {}})
    )
    ack = {"ts": T0 + 1, "kind": "ack", "request": "POST /api/vod/create",
           "values": {"vod_id": "9b1c"}, "status": 200}  # fmt: skip
    (run / "ledger-1.jsonl").write_text(json.dumps(ack) + "\n")
    table = run_findings(run).table
    assert list(table["kind"]) == [WRONG_ANSWER, NEVER_STORED]
    text = to_text(table)
    assert "wrong answer GET /api/transcriptions" in text
    assert "5 of 5 (100%)" in text and "held 12 transcriptions when the run started" in text
    assert "POST /api/vod/create" in text and "e.g. vod_id '9b1c'" in text
    assert main(["findings", str(run)]) == 0
    assert "[] while the database held 12 transcriptions" in capsys.readouterr().out
    # The same run without the truth: the answers go unjudged, the lost write stays.
    (run / "answers-truth.json").unlink()
    assert list(run_findings(run).table["kind"]) == [NEVER_STORED]
