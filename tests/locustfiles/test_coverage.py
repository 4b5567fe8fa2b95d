"""Nothing silent: the rules that turn a run's task tally into problems and notes."""

from __future__ import annotations

from collections import Counter

from workload.coverage import Coverage, TaskTally, findings, summary_lines

DECLARED = {
    "Editor.browse": frozenset({"list_vods"}),
    "Editor.publish": frozenset({"create_vod", "process_vod", "get_vod"}),
    "Editor.health": frozenset({"health"}),
    "Reader.read": frozenset({"list_vods"}),
}
FLASK_ROUTES = ("health", "csrf_token", "create_vod", "process_vod", "sync_status")
SKIP = "needs route 'list_vods', not in profile 'flask'"


def flask_run() -> Coverage:
    """What vod.py does against a profile without list_vods/get_vod."""
    return Coverage(
        tasks={
            "Editor.browse": TaskTally(runs=5, skipped=Counter({SKIP: 5})),
            "Editor.publish": TaskTally(
                runs=2, skipped=Counter({"needs route 'get_vod', not in profile 'flask'": 2})
            ),
            "Editor.health": TaskTally(runs=3, sent=3, requests=3),
            "Reader.read": TaskTally(runs=9, skipped=Counter({SKIP: 9})),
        },
        users=Counter({"Editor": 2, "Reader": 1}),
        routes=Counter({"health": 3, "csrf_token": 0}),
    )


def test_a_class_that_sent_nothing_and_a_route_never_exercised_are_problems() -> None:
    found = findings(flask_run(), "flask", FLASK_ROUTES, DECLARED, DECLARED)
    assert found.problems == (
        "user class Reader sent no request (1 users, 9 task runs: 9 skipped, 0 did nothing; "
        f"{SKIP})",
        "route create_vod of profile flask was never exercised; tasks that use it ran: "
        "Editor.publish (2 runs, skipped: needs route 'get_vod', not in profile 'flask' (2x))",
        "route process_vod of profile flask was never exercised; tasks that use it ran: "
        "Editor.publish (2 runs, skipped: needs route 'get_vod', not in profile 'flask' (2x))",
    )
    assert f"Editor.browse: skipped 5 of 5 runs: {SKIP} (5x)" in found.skipped
    assert "route sync_status not exercised: no task of this workload uses it" in found.notes
    assert "route csrf_token not exercised: no task of this workload uses it" in found.notes


def test_a_run_that_exercised_everything_it_selected_has_no_problem() -> None:
    coverage = Coverage(
        tasks={
            "Editor.browse": TaskTally(runs=4, sent=4, requests=6),
            "Editor.health": TaskTally(runs=1, sent=1, requests=1),
        },
        users=Counter({"Editor": 1}),
        routes=Counter({"list_vods": 6, "health": 1}),
    )
    selected = {"Editor.browse", "Editor.health", "Editor.publish"}
    found = findings(coverage, "contract", ("list_vods", "health", "get_vod"), DECLARED, selected)
    assert found.problems == ()
    assert "task Editor.publish was never picked" in found.notes
    assert "route get_vod not exercised: its tasks (Editor.publish) did not run" in found.notes
    assert "user class Reader: no user was started" not in " ".join(found.notes)


def test_a_task_that_ran_but_never_reached_its_route_is_a_problem() -> None:
    coverage = Coverage(
        tasks={"Editor.publish": TaskTally(runs=5, idle=5)},
        users=Counter({"Editor": 1}),
        routes=Counter(),
    )
    found = findings(coverage, "contract", ("process_vod",), DECLARED, {"Editor.publish"})
    assert found.problems[-1] == (
        "route process_vod of profile contract was never exercised; tasks that use it ran: "
        "Editor.publish (5 runs, 5 did nothing)"
    )
    assert "task Editor.publish did nothing in 5 of 5 runs" in found.notes


def test_the_tallies_of_several_processes_add_up() -> None:
    one, two = flask_run().to_json(), flask_run().to_json()
    merged = Coverage.merged([one, two])
    assert merged.users == Counter({"Editor": 4, "Reader": 2})
    assert merged.tasks["Reader.read"].skipped == Counter({SKIP: 18})
    assert merged.routes["health"] == 6
    lines = summary_lines(merged, findings(merged, "flask", FLASK_ROUTES, DECLARED, DECLARED))
    assert any(line.startswith("PROBLEM: user class Reader sent no request") for line in lines)


def test_a_route_whose_task_ran_only_a_few_times_with_nothing_to_do_is_a_note() -> None:
    """A short run: the one delete came before any VOD of its own existed."""
    coverage = Coverage(
        tasks={
            "Editor.delete": TaskTally(runs=1, idle=1),
            "Editor.health": TaskTally(runs=2, sent=2, requests=2),
        },
        users=Counter({"Editor": 1}),
        routes=Counter({"health": 2}),
    )
    declared = {"Editor.delete": frozenset({"delete_vod"})}
    found = findings(coverage, "contract", ("delete_vod",), declared, declared)
    assert found.problems == ()
    assert found.notes[0] == (
        "route delete_vod not exercised: its tasks ran only 1 times: "
        "Editor.delete (1 runs, 1 did nothing)"
    )


def test_a_class_whose_few_task_runs_did_nothing_is_a_note_and_many_idle_runs_a_problem() -> None:
    """A short run (a paired-gate slice): the reader spawned near the end ran one task that
    had nothing to do yet. Idle as often as MIN_RUNS, it is silence."""

    def reader(runs: int) -> Coverage:
        return Coverage(
            tasks={
                "Editor.health": TaskTally(runs=2, sent=2, requests=2),
                "Reader.read": TaskTally(runs=runs, idle=runs),
            },
            users=Counter({"Editor": 1, "Reader": 1}),
            routes=Counter({"health": 2}),
        )

    short = findings(reader(1), "contract", ("health",), DECLARED, DECLARED)
    assert short.problems == ()
    assert (
        "user class Reader sent no request in its few task runs (1 users, 1 task runs: "
        "0 skipped, 1 did nothing)" in short.notes
    )
    long = findings(reader(5), "contract", ("health",), DECLARED, DECLARED)
    assert long.problems == (
        "user class Reader sent no request (1 users, 5 task runs: 0 skipped, 5 did nothing)",
    )


def test_idle_runs_count_per_user_so_a_short_run_with_many_users_is_not_silent() -> None:
    """30 editors for 6 s: each tried to edit once or twice before creating a VOD."""
    coverage = Coverage(
        tasks={
            "Editor.edit": TaskTally(runs=8, idle=8),
            "Editor.health": TaskTally(runs=30, sent=30, requests=30),
        },
        users=Counter({"Editor": 30}),
        routes=Counter({"health": 30}),
    )
    declared = {"Editor.edit": frozenset({"update_vod"}), "Editor.health": frozenset({"health"})}
    found = findings(coverage, "contract", ("update_vod", "health"), declared, declared)
    assert found.problems == ()
    assert any(
        n.startswith("route update_vod not exercised: its tasks ran only 8") for n in found.notes
    )
