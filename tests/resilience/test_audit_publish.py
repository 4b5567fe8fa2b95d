"""The publications audit (experiments/audit_publish.py) on synthetic rows, no stack needed:
each rule names the defect it catches and stays quiet on a clean publication."""

from __future__ import annotations

from typing import Any

from experiments.audit_publish import AppRows, CablecastView, judge_publications
from experiments.audit_result import AuditResult
from workload.routes import Profile

RULE = Profile.load("archivist-flask").audit.publications  # type: ignore[union-attr]
assert RULE is not None
TID = "0b7c6c2e-0000-4000-8000-000000000001"


def _entry(kind: str, tid: str = TID, vod: int | None = None) -> dict[str, Any]:
    values: dict[str, Any] = {"{id}": tid}
    if kind == "ack":
        values["vod_id"] = vod
    return {"ts": 1.0, "kind": kind, "request": RULE.request, "values": values}


def _judge(
    entries: list[dict[str, Any]], rows: AppRows, cablecast: CablecastView | None
) -> AuditResult:
    result = AuditResult()
    judge_publications(RULE, entries, rows, cablecast, result)
    return result


# One clean publication: show row 1 (Cablecast show 50) for TID, VOD 70 under it.
ROWS = AppRows(shows={1: (50, TID)}, vods={70: 1})
CABLECAST = CablecastView(shows={50: "archivist-fixture-council-meeting-1"}, vods={70: 50, 9: 3})


def test_a_clean_publication_passes_and_is_counted() -> None:
    result = _judge([_entry("ack", vod=70), _entry("refused")], ROWS, CABLECAST)
    assert result.ok and not result.notes, result.to_json()
    assert result.checked["publications acknowledged"] == 1
    assert result.checked["publications refused"] == 1
    assert result.checked["Cablecast publication shows"] == 1


def test_an_acknowledged_vod_missing_in_cablecast_is_lost() -> None:
    result = _judge([_entry("ack", vod=70)], ROWS, CablecastView(CABLECAST.shows, {}))
    assert [f.id for f in result.lost] == [70]


def test_a_vod_under_another_show_in_cablecast_is_inconsistent() -> None:
    moved = CablecastView({50: "archivist-fixture-1", 51: "archivist-fixture-2"}, {70: 51})
    rows = AppRows({1: (50, TID), 2: (51, None)}, {70: 1})
    result = _judge([_entry("ack", vod=70)], rows, moved)
    assert any("under show 51" in f.problem for f in result.inconsistent), result.to_json()


def test_a_show_row_linked_to_another_transcription_is_inconsistent() -> None:
    rows = AppRows({1: (50, "someone-else")}, {70: 1})
    result = _judge([_entry("ack", vod=70)], rows, CABLECAST)
    assert any("its show row is for someone-else" in f.problem for f in result.inconsistent)


def test_a_refused_publication_that_wrote_a_row_is_a_half_write() -> None:
    result = _judge([_entry("refused")], ROWS, CABLECAST)
    assert any("refused 1x" in f.problem for f in result.inconsistent), result.to_json()


def test_two_show_rows_for_one_publication_are_duplicated() -> None:
    rows = AppRows({1: (50, TID), 2: (51, TID)}, {70: 1})
    cablecast = CablecastView({50: "archivist-fixture-1", 51: "archivist-fixture-1"}, {70: 50})
    result = _judge([_entry("ack", vod=70)], rows, cablecast)
    assert [f.id for f in result.duplicated] == [TID]


def test_a_publication_show_and_vod_no_row_points_at_are_half_written() -> None:
    orphan = CablecastView({50: "archivist-fixture-1", 60: "archivist-fixture-2"}, {70: 50, 71: 60})
    result = _judge([_entry("ack", vod=70), _entry("refused")], ROWS, orphan)
    found = sorted(str(f.id) for f in result.inconsistent)
    assert found == ["60", "71"], result.to_json()
    assert all("half-written" in f.problem for f in result.inconsistent)


def test_without_cablecast_only_the_rows_are_checked() -> None:
    result = _judge([_entry("ack", vod=70)], ROWS, None)
    assert result.ok and "Cablecast publication shows" not in result.checked
