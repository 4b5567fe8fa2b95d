"""Nothing silent: what each task did, which routes were exercised, and why a run says so.

Against a deployment whose routes differ from the workload's (another route profile), a
task can be skipped (it needs a route the profile lacks) or do nothing (its VOD list is
empty because creating one failed); a Locust run would still "pass". This module keeps
the tally, per process, of every task run: sent a request, skipped (and why), or did
nothing; and of the requests per route key. Then, pure functions decide:

- a user class whose users ran and whose tasks sent no request at all is a problem;
- a profile route that a task which ran declares it uses (``uses`` in
  workload/tally.py) but that never got a request is a problem, once those tasks
  were always skipped or ran ``MIN_RUNS`` times per user (a short run may simply not get there);
- everything else that did not happen (a task never picked, a profile route no task of
  this workload uses, a task skipped now and then) is listed, not hidden.

No Locust in here, so the rules are tested on plain data; the Locust side (events, the
worker-to-master report, the exit code) is in workload/tally.py and
workload/coverage_wiring.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# A task may run a few times with nothing to do yet (no VOD of its own to edit): a route
# its tasks never reached is a problem once they ran this often per user, or were always
# skipped.
MIN_RUNS = 5


@dataclass
class TaskTally:
    """What one task (``Class.task``) did over the run, in one process or merged."""

    runs: int = 0
    sent: int = 0  # runs that sent at least one request
    requests: int = 0
    idle: int = 0  # runs that finished without sending anything (not skipped, not cut short)
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> runs

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "sent": self.sent,
            "requests": self.requests,
            "idle": self.idle,
            "skipped": dict(self.skipped),
        }


@dataclass
class Coverage:
    """The tally of one process (or of all, merged): tasks, users per class, route requests."""

    tasks: dict[str, TaskTally] = field(default_factory=dict)
    users: Counter[str] = field(default_factory=Counter)  # class -> users started
    routes: Counter[str] = field(default_factory=Counter)  # route key -> requests sent

    def task(self, key: str) -> TaskTally:
        tally = self.tasks.get(key)
        if tally is None:
            tally = self.tasks[key] = TaskTally()
        return tally

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks": {k: t.to_json() for k, t in sorted(self.tasks.items())},
            "users": dict(self.users),
            "routes": dict(self.routes),
        }

    @classmethod
    def merged(cls, parts: Iterable[Mapping[str, Any]]) -> Coverage:
        """The sum of several processes' ``to_json`` snapshots."""
        total = cls()
        for part in parts:
            total.users.update(part.get("users", {}))
            total.routes.update(part.get("routes", {}))
            for key, raw in part.get("tasks", {}).items():
                tally = total.task(key)
                tally.runs += int(raw.get("runs", 0))
                tally.sent += int(raw.get("sent", 0))
                tally.requests += int(raw.get("requests", 0))
                tally.idle += int(raw.get("idle", 0))
                tally.skipped.update(raw.get("skipped", {}))
        return total


@dataclass(frozen=True)
class Findings:
    """Problems end the run non-zero; notes are listed so nothing goes unsaid."""

    problems: tuple[str, ...]
    notes: tuple[str, ...]
    skipped: tuple[str, ...]  # one line per skipped task, with its reasons

    def to_json(self) -> dict[str, Any]:
        return {
            "problems": list(self.problems),
            "notes": list(self.notes),
            "skipped": list(self.skipped),
        }


def _class_of(task_key: str) -> str:
    return task_key.split(".", 1)[0]


def _reasons(tally: TaskTally) -> str:
    return "; ".join(f"{reason} ({n}x)" for reason, n in tally.skipped.most_common())


def findings(
    coverage: Coverage,
    profile_name: str,
    profile_routes: Iterable[str],
    declared: Mapping[str, frozenset[str]],
    selected: Iterable[str],
) -> Findings:
    """Judge one run's tally.

    `declared` maps each task of the loaded user classes (``Class.task``) to the route
    keys it says it uses; `selected` names the tasks left after ``-T``/``-E`` and the
    choice of user classes.
    """
    selected = set(selected)
    problems: list[str] = []
    notes: list[str] = []
    skipped = tuple(
        f"{key}: skipped {sum(t.skipped.values())} of {t.runs} runs: {_reasons(t)}"
        for key, t in sorted(coverage.tasks.items())
        if t.skipped
    )
    for cls, users in sorted(coverage.users.items()):
        if users <= 0:
            continue
        mine = {k: t for k, t in coverage.tasks.items() if _class_of(k) == cls}
        if sum(t.requests for t in mine.values()):
            continue
        runs = sum(t.runs for t in mine.values())
        skips = sum(sum(t.skipped.values()) for t in mine.values())
        idle = sum(t.idle for t in mine.values())
        why = f"{runs} task runs: {skips} skipped, {idle} did nothing"
        if skips:
            reasons: Counter[str] = Counter()
            for t in mine.values():
                reasons.update(t.skipped)
            why += f"; {reasons.most_common(1)[0][0]}"
        # As for routes: a class whose tasks ran only a few times per user, doing nothing (a
        # short run, users spawned at its end), is a note; always skipped, or often idle, is not.
        if (runs and skips == runs) or runs >= MIN_RUNS * users:
            problems.append(f"user class {cls} sent no request ({users} users, {why})")
        else:
            few = f"user class {cls} sent no request in its few task runs"
            notes.append(f"{few} ({users} users, {why})")
    for key in sorted(selected - set(coverage.tasks)):
        if coverage.users.get(_class_of(key), 0) > 0:
            notes.append(f"task {key} was never picked")
    for cls in sorted({_class_of(k) for k in selected} - set(coverage.users)):
        notes.append(f"user class {cls}: no user was started (fewer users than classes?)")
    for route in sorted(profile_routes):
        if coverage.routes.get(route, 0) > 0:
            continue
        users_of = sorted(k for k, keys in declared.items() if route in keys)
        ran = [k for k in users_of if k in coverage.tasks and coverage.tasks[k].runs]
        runs = sum(coverage.tasks[k].runs for k in ran)
        all_skipped = all(
            sum(coverage.tasks[k].skipped.values()) == coverage.tasks[k].runs for k in ran
        )
        what = ", ".join(
            f"{k} ({coverage.tasks[k].runs} runs"
            + (f", skipped: {_reasons(coverage.tasks[k])}" if coverage.tasks[k].skipped else "")
            + (f", {coverage.tasks[k].idle} did nothing" if coverage.tasks[k].idle else "")
            + ")"
            for k in ran
        )
        # MIN_RUNS per user: in a short run with many users each ran the task once or
        # twice, before it had anything to do (an edit before the user's first create).
        users_ran = sum(coverage.users.get(c, 0) for c in {_class_of(k) for k in ran})
        if ran and (all_skipped or runs >= MIN_RUNS * max(1, users_ran)):
            problems.append(
                f"route {route} of profile {profile_name} was never exercised; "
                f"tasks that use it ran: {what}"
            )
        elif ran:
            notes.append(f"route {route} not exercised: its tasks ran only {runs} times: {what}")
        elif users_of:
            notes.append(
                f"route {route} not exercised: its tasks ({', '.join(users_of)}) did not run"
            )
        else:
            notes.append(f"route {route} not exercised: no task of this workload uses it")
    for key, t in sorted(coverage.tasks.items()):
        if t.idle:
            notes.append(f"task {key} did nothing in {t.idle} of {t.runs} runs")
    return Findings(tuple(problems), tuple(notes), skipped)


def summary_lines(coverage: Coverage, found: Findings) -> list[str]:
    """The end-of-run table: one line per task, then skipped tasks, notes and problems."""
    lines = ["Tasks (runs / sent a request / skipped / did nothing):"]
    for key, t in sorted(coverage.tasks.items()):
        skips = sum(t.skipped.values())
        lines.append(f"  {key:<44} {t.runs:>6} {t.sent:>6} {skips:>6} {t.idle:>6}")
    lines += [f"skipped: {line}" for line in found.skipped]
    lines += [f"note: {line}" for line in found.notes]
    lines += [f"PROBLEM: {line}" for line in found.problems]
    return lines
