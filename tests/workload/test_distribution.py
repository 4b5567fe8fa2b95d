"""Locust's master/worker flags of an experiment's [load] or the gate's [run]."""

from __future__ import annotations

import pytest

from workload.distribution import Distribution, distribution_of, distribution_problem


def test_one_process_local_workers_and_remote_workers_are_locusts_own_flags() -> None:
    assert Distribution().flags() == [] and not Distribution().distributed
    assert Distribution(workers=3).flags() == ["--processes", "3"]
    remote = distribution_of(
        {"expect_workers": 2, "master_bind_host": "*", "expect_workers_wait_s": 30}
    )
    assert remote.flags() == [
        "--master", "--expect-workers", "2", "--expect-workers-max-wait", "30",
        "--master-bind-host", "*", "--master-bind-port", "5557",
    ]  # fmt: skip
    assert remote.start_allowance_s() == 30.0 and Distribution(workers=2).start_allowance_s() == 0


@pytest.mark.parametrize(
    ("values", "field", "why"),
    [
        ({"workers": -1}, "workers", "whole number from 0 to 256, got -1"),
        ({"workers": True}, "workers", "got True"),
        ({"expect_workers": 2.5}, "expect_workers", "got 2.5"),
        ({"workers": 1, "expect_workers": 1}, "expect_workers", "exclude each other"),
        ({"master_bind_host": "example.org"}, "master_bind_host", "must be an IP address"),
        ({"master_bind_port": 0}, "master_bind_port", "from 1 to 65535"),
        ({"expect_workers_wait_s": 0}, "expect_workers_wait_s", "seconds in (0, 3600]"),
    ],
)
def test_values_that_cannot_run_name_their_field(
    values: dict[str, object], field: str, why: str
) -> None:
    problem = distribution_problem(values)
    assert problem is not None and problem[0] == field and why in problem[1]


def test_sound_values_have_no_problem() -> None:
    assert distribution_problem({}) is None
    assert distribution_problem({"expect_workers": 4, "master_bind_host": "10.0.0.2"}) is None
