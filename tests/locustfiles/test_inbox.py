"""The master's inbox of one worker's data (workload.inbox), without Locust: file names,
batches as they arrive, and when a worker counts as lost."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from workload.inbox import Inbox, file_stem, table_bytes, worker_lines
from workload.schema import SCHEMA, rows_table


def rows(n: int, name: str = "/api/vods") -> list[tuple[object, ...]]:
    return [
        (1.5 + i, name, "GET", 1000 + i, i % 3 != 0, None if i % 3 else "boom", 10, 1.0 + i,
         200, None, None)
        for i in range(n)
    ]  # fmt: skip


def test_a_client_id_becomes_a_safe_file_name() -> None:
    assert file_stem("vm_0a1b") == "vm_0a1b"
    assert file_stem("host.example.org_ab12") == "host.example.org_ab12"
    assert file_stem("../etc/pass wd:1") == ".._etc_pass_wd_1"
    assert "/" not in file_stem("a/b") and file_stem("") == "worker"


def test_batches_land_in_one_file_per_worker_as_the_worker_built_them(tmp_path: Path) -> None:
    inbox = Inbox("host/1_ab", tmp_path)
    first, second = rows_table(rows(5), 41, 0), rows_table(rows(3, "/api/shows"), 41, 0)
    assert inbox.add_rows(table_bytes(first)) == 5
    assert inbox.add_rows(table_bytes(second)) == 3
    inbox.add_ledger(['{"kind":"created","id":1}\n', '{"kind":"deleted","id":1}\n'])
    inbox.close()
    assert inbox.requests_path.name == "requests-host_1_ab.parquet"
    table = pq.read_table(inbox.requests_path)
    assert table.schema.equals(SCHEMA) and table.num_rows == 8
    assert table.to_pylist() == first.to_pylist() + second.to_pylist()
    assert inbox.ledger_path.read_text() == '{"kind":"created","id":1}\n{"kind":"deleted","id":1}\n'


def test_a_worker_ended_normally_only_when_its_report_came_and_all_it_counted_arrived(
    tmp_path: Path,
) -> None:
    inbox = Inbox("w", tmp_path)
    inbox.add_rows(table_bytes(rows_table(rows(4), 1, 0)))
    assert inbox.ended == "lost"  # no final report (killed, cut off)
    inbox.report(rows=5, ledger=0)
    assert inbox.ended == "lost"  # it counted one more row than arrived
    inbox.report(rows=4, ledger=0)
    assert inbox.to_json() == {
        "rows_received": 4, "ledger_received": 0, "rows_sent": 4, "ledger_sent": 0,
        "ended": "normally",
    }  # fmt: skip
    inbox.final = False  # a new test started: its own final report is awaited
    assert inbox.ended == "lost"


def test_the_lines_name_a_lost_worker_and_what_arrived_from_it() -> None:
    lines = worker_lines(
        {
            "b": {"rows_received": 7, "ledger_received": 2, "ended": "lost"},
            "a": {"rows_received": 9, "ledger_received": 0, "ended": "normally"},
        }
    )
    assert lines == [
        "worker a: 9 requests, 0 ledger entries received, ended normally",
        "worker b was LOST before its final report: kept only what it sent until then "
        "(7 requests, 2 ledger entries); whatever it recorded later is missing",
    ]
