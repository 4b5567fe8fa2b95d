"""Publications that work, audited end to end on the real Archivist's code (ARCHIVIST_SRC;
skipped without it). At its HEAD every publish fails before Cablecast is called (the
profile's [defects] process_vod), so what the audit checks of an acknowledged one is
seen on a copy with those defects fixed (config/seeds/archivist-flask.toml
`publish-fixed`); the same copy with its VOD row dropped (`publish-vod-row-dropped`)
must fail the audit. The checkout itself is never edited."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosted.seeding import in_order, load_seeds, seeded_copy
from tests.conftest import archivist_src, hosting

from .test_publish_real import publish_and_audit

pytestmark = [pytest.mark.slow, pytest.mark.hosts_real_app, pytest.mark.timeout(900)]


def copy_with(seed: str, into: Path) -> Path:
    return seeded_copy(archivist_src(), into, in_order(load_seeds("archivist-flask"), [seed]))


def test_with_publishing_fixed_each_acknowledged_publication_is_checked_in_both_stores(
    tmp_path: Path,
) -> None:
    with hosting(copy_with("publish-fixed", tmp_path / "copy")) as stack:
        published, result = publish_and_audit(stack, tmp_path / "run")
    print(f"\npublish-fixed: audit checked {result.checked}")
    acked = result.checked["publications acknowledged"]
    assert acked == sum(e["kind"] == "ack" for e in published) > 0, result.to_json()
    assert result.checked["cablecast_vods.id"] == acked  # each VOD's row, by the tables audit
    assert result.checked["Cablecast publication shows"] >= acked  # and in the simulator
    assert result.ok, result.to_json()


def test_a_publication_acknowledged_without_its_vod_row_fails_the_audit(tmp_path: Path) -> None:
    with hosting(copy_with("publish-vod-row-dropped", tmp_path / "copy")) as stack:
        _, result = publish_and_audit(stack, tmp_path / "run")
    print(f"\npublish-vod-row-dropped: checked {result.checked}; {str(result.to_json())[:1500]}")
    assert result.checked["publications acknowledged"] > 0, result.to_json()
    assert not result.ok
    problems = [f.problem for f in (*result.lost, *result.inconsistent)]
    assert any("no cablecast_vods row" in p for p in problems), result.to_json()
