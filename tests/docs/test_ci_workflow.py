"""The workflow we hand Archivist (docs/ci/archivist-pull-request.yml) runs in their CI, not
ours: nothing here starts it. What can be checked without GitHub is checked: it runs on
pull requests, every `python -m MODULE ...` it types is accepted by that module's own
argument parser, the experiment it names is in the catalogue, and the artifact upload runs
whatever happened and holds every file and folder those commands write.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from analysis.cli import build_parser
from experiments.cli import experiment_file
from experiments.cli import parser as experiments_parser
from experiments.experiment_file import load_experiment

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "docs" / "ci" / "archivist-pull-request.yml"
TOOLKIT_DIR = "loadkit"  # where the workflow checks the toolkit out, in the workspace

# The CLIs the workflow may call, by module, as `python -m MODULE` builds them.
PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "analysis": build_parser,
    "experiments": experiments_parser,
}
# Options whose value is a file or folder a command writes.
OUTPUTS = ("junit", "report", "run_dir", "out")
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)
SHELL_OPERATORS = {"||", "&&", ";", "|", "&", ">", ">>", "2>", "<"}


@dataclass(frozen=True)
class Command:
    """One `python -m MODULE ARGS` of a `run:` step, its variables filled in."""

    step: str
    module: str
    args: list[str]
    workdir: PurePosixPath  # relative to the workspace

    def parse(self) -> argparse.Namespace:
        """ARGS as MODULE's parser reads them; a refusal fails the test with its message."""
        make = PARSERS.get(self.module)
        assert make is not None, (
            f"step {self.step!r} runs python -m {self.module}: no parser known for it; "
            f"add it to PARSERS (known: {', '.join(PARSERS)})"
        )
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                return make().parse_args(self.args)
        except SystemExit:
            pass  # failed below, outside the handler: the message, not argparse's traceback
        pytest.fail(
            f"step {self.step!r}: python -m {self.module} {shlex.join(self.args)} is "
            f"refused by its parser:\n{err.getvalue()}"
        )

    def outputs(self) -> list[PurePosixPath]:
        """The paths its output options name, relative to the workspace."""
        args = vars(self.parse())
        given = [args[o] for o in OUTPUTS if isinstance(args.get(o), str | Path)]
        return [normalise(self.workdir / str(p)) for p in given]


def normalise(path: PurePosixPath) -> PurePosixPath:
    """`loadkit/../out/x` -> `out/x`, without touching a disk."""
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            assert parts, f"{path} leaves the workspace"
            parts.pop()
        elif part != ".":
            parts.append(part)
    return PurePosixPath(*parts)


def sample_value(value: object) -> str:
    """An env value with each `${{ expression }}` replaced by its last quoted literal (the
    fallback of `a || 'default'`), else by a placeholder: what it is on a plain PR."""

    def literal(match: re.Match[str]) -> str:
        quoted = re.findall(r"'([^']*)'", match.group(1))
        return quoted[-1] if quoted else "sample"

    return EXPRESSION.sub(literal, str(value))


def logical_lines(script: str) -> list[str]:
    """Shell lines with backslash continuations joined."""
    return script.replace("\\\n", " ").splitlines()


def load_workflow() -> dict[Any, Any]:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def steps(workflow: dict[Any, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(job, step) for job in workflow["jobs"].values() for step in job["steps"]]


def python_commands(workflow: dict[Any, Any]) -> list[Command]:
    found = []
    for job, step in steps(workflow):
        if "run" not in step:
            continue
        env = {**workflow.get("env", {}), **job.get("env", {}), **step.get("env", {})}
        values = {name: sample_value(v) for name, v in env.items()}
        workdir = PurePosixPath(step.get("working-directory", "."))
        for line in logical_lines(step["run"]):
            words = shlex.split(string.Template(line).safe_substitute(values), comments=True)
            if words[:2] != ["python", "-m"] or len(words) < 3 or words[2] == "pip":
                continue
            args = words[3:]
            for i, word in enumerate(args):
                if word in SHELL_OPERATORS:
                    args = args[:i]
                    break
            found.append(Command(step["name"], words[2], args, workdir))
    return found


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    return load_workflow()


@pytest.fixture(scope="module")
def commands(workflow: dict[Any, Any]) -> list[Command]:
    found = python_commands(workflow)
    assert {c.module for c in found} == {"analysis", "experiments"}, (
        "the workflow should run the gate (python -m analysis) and an experiment "
        f"(python -m experiments); it runs: {[f'{c.module} {c.args[:1]}' for c in found]}"
    )
    return found


def test_it_runs_on_pull_requests(workflow: dict[Any, Any]) -> None:
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean True.
    triggers = workflow.get("on", workflow.get(True))
    assert isinstance(triggers, dict | list | str), f"no `on:` in {WORKFLOW.name}"
    assert "pull_request" in triggers


def test_it_checks_out_archivist_with_its_history_and_the_toolkit_beside_it(
    workflow: dict[Any, Any],
) -> None:
    checkouts = {
        step["with"]["path"]: step["with"]
        for _, step in steps(workflow)
        if str(step.get("uses", "")).startswith("actions/checkout@")
    }
    assert set(checkouts) == {"archivist", TOOLKIT_DIR}
    assert checkouts["archivist"]["fetch-depth"] == 0, "the gate needs AGAINST's commits"
    assert checkouts[TOOLKIT_DIR]["repository"] == "${{ env.LOADKIT_REPO }}"
    assert "LOADKIT_REPO" in workflow["env"]


def test_every_python_command_is_accepted_by_its_modules_parser(
    commands: list[Command],
) -> None:
    for command in commands:
        command.parse()


def test_the_toolkit_is_installed_editable_and_run_from_its_checkout(
    workflow: dict[Any, Any], commands: list[Command]
) -> None:
    # It reads config/ (apps, gate thresholds, experiments) relative to its checkout and
    # the working directory; a wheel carries no config/.
    installs = [
        line
        for _, step in steps(workflow)
        for line in logical_lines(step.get("run", ""))
        if "pip install" in line and "--upgrade pip" not in line
    ]
    assert installs and all(" -e " in f"{line} " for line in installs), installs
    for command in commands:
        assert command.workdir == PurePosixPath(TOOLKIT_DIR), (
            f"step {command.step!r} runs in {command.workdir}, not {TOOLKIT_DIR}/"
        )


def test_the_gate_compares_the_real_app_with_another_ref_of_its_checkout(
    commands: list[Command],
) -> None:
    (gate,) = [c for c in commands if c.module == "analysis"]
    args = gate.parse()
    assert args.command == "gate"
    assert args.against, "a paired gate: --against REF"
    assert args.app == "archivist-flask" and (ROOT / "config/apps/archivist-flask.toml").is_file()
    assert normalise(gate.workdir / args.app_src) == PurePosixPath("archivist")
    assert args.junit and args.report


def test_the_experiment_it_names_is_in_the_catalogue_and_hosts_the_real_app(
    commands: list[Command],
) -> None:
    (run,) = [c for c in commands if c.module == "experiments"]
    args = run.parse()
    assert args.command == "run"
    path = experiment_file(args.experiment)  # an unknown name: ExperimentError, names known
    assert path.parent == ROOT / "config" / "experiments", f"{path} is not in the catalogue"
    experiment = load_experiment(path)
    assert (args.app or experiment.stack.app) == "archivist-flask", (
        f"{path.name} would run on the reference stack, not the PR's code"
    )
    assert normalise(run.workdir / args.app_src) == PurePosixPath("archivist")
    assert args.run_dir and args.report, "its run folder and HTML report land in out/"


def test_the_upload_runs_always_and_holds_everything_the_commands_write(
    workflow: dict[Any, Any], commands: list[Command]
) -> None:
    uploads = [
        step
        for _, step in steps(workflow)
        if str(step.get("uses", "")).startswith("actions/upload-artifact@v4")
    ]
    assert len(uploads) == 1, "one upload-artifact@v4 step"
    (upload,) = uploads
    assert "always()" in str(upload.get("if", "")), "reports matter most when a step failed"
    uploaded = [
        normalise(PurePosixPath(p)) for p in str(upload["with"]["path"]).split() if p.strip()
    ]
    written = [path for command in commands for path in command.outputs()]
    assert written, "the commands name no output (--junit, --report, --run-dir)"
    for path in written:
        assert any(path == u or u in path.parents for u in uploaded), (
            f"{path} is written but not uploaded (uploaded: {', '.join(map(str, uploaded))})"
        )


def test_the_published_junit_is_the_one_the_gate_writes(
    workflow: dict[Any, Any], commands: list[Command]
) -> None:
    (gate,) = [c for c in commands if c.module == "analysis"]
    junit = normalise(gate.workdir / str(gate.parse().junit))
    published = [
        step["with"]["report_paths"]
        for _, step in steps(workflow)
        if "junit" in str(step.get("uses", "")).lower()
    ]
    assert published == [str(junit)]
