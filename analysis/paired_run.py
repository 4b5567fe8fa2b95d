"""Run the paired gate: REF's stack and this tree's stack, loaded in alternating slices.

REF is exported with ``git archive`` into a temporary folder (not ``git worktree add``: an
export leaves nothing in the repository's administrative files, even if this process is
killed) and its stack is started from there with this virtualenv's Python, so REF's own
``testbed`` code runs. The candidate stack is this tree's. Both get free ports and their
own temporary state. Every slice is one headless Locust run of this tree's locustfile (the
same instrument for both sides) with the same seed, recorded by ``workload.capture``.

Whatever happens (a failed start, Ctrl-C, SIGTERM) both stacks are stopped and the
temporary folder, REF's export included, is removed.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.config import PairedSettings
from analysis.load import InputError, load_run
from analysis.paired import slice_order
from analysis.processes import log_tail, stop_groups, terminate_as_interrupt

REPO_ROOT = Path(__file__).resolve().parents[1]
STACK_START_S = 240.0  # both stacks start together on a busy 2-core box
STACK_STOP_S = 90.0  # both stacks stop together; PostgreSQL is slow to stop on a busy box
SLICE_SLACK_S = 60.0  # Locust's own start and stop on top of the slice
SPLICE = Path("faults/server/_splice.c")
_API = re.compile(r"^\s*API\s+(http\S+)", re.M)
_CABLECAST = re.compile(r"^\s*Cablecast\s+(http\S+)", re.M)
_READY = "press Ctrl-C to stop"


class PairedRunError(InputError):
    """A stack or a slice could not run; the message says which and shows its log tail."""


@dataclass(frozen=True)
class Target:
    """One running stack: where its API and (direct) Cablecast simulator answer."""

    label: str
    api_url: str
    cablecast_url: str


def resolve_ref(ref: str, repo: Path = REPO_ROOT) -> str:
    """The commit REF names, or an InputError in one line."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise InputError(f"--against {ref}: cannot run git ({exc})") from exc
    if out.returncode != 0 or not out.stdout.strip():
        raise InputError(f"--against {ref}: not a commit of this repository ({repo})")
    return out.stdout.strip()


def export_tree(commit: str, dest: Path, repo: Path = REPO_ROOT) -> None:
    """REF's files in ``dest``; the built fault-server extension is copied when REF's C
    source is this tree's, so both stacks forward through the same data plane."""
    out = subprocess.run(
        ["git", "archive", "--format=tar", commit], cwd=repo, capture_output=True, timeout=120
    )
    if out.returncode != 0:
        raise PairedRunError(f"git archive {commit}: {out.stderr.decode(errors='replace')}")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        tar.extractall(dest, filter="data")
    if same_file(repo / SPLICE, dest / SPLICE):
        for built in (repo / SPLICE.parent).glob("_splice*.so"):
            shutil.copy2(built, dest / SPLICE.parent / built.name)


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def remove_tree(path: Path, attempts: int = 40) -> None:
    """Remove ``path``, retrying: a stack killed after its grace leaves its guardian to stop
    the last parts, which may write into their state a moment longer."""
    for _ in range(attempts):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return
        time.sleep(0.5)
    print(f"warning: could not remove all of {path}", file=sys.stderr)


@contextlib.contextmanager
def work_folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="paired-gate-"))
    try:
        yield path
    finally:
        remove_tree(path)


@contextlib.contextmanager
def stacks(
    specs: list[tuple[str, Path, str | None]], workdir: Path, env: dict[str, str]
) -> Iterator[list[Target]]:
    """Start one stack per (label, tree, regression) at once; stop them all on exit."""
    procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    try:
        for label, tree, regression in specs:
            log = workdir / f"stack-{label}.log"
            cmd = [sys.executable, "-m", "testbed", "up", "--free-ports", "--exit-with-parent"]
            cmd += ["--state-dir", str(workdir / f"state-{label}")]
            cmd += ["--regression", regression] if regression else []
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    cmd,
                    cwd=tree,
                    env=env | {"PYTHONPATH": str(tree)},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            procs.append((label, proc, log))
        yield [_wait_ready(label, proc, log) for label, proc, log in procs]
    finally:
        # A second Ctrl-C must not cut the stop short and leave a stack holding its ports.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            stop_groups([proc for _, proc, _ in procs], STACK_STOP_S)
        finally:
            signal.signal(signal.SIGINT, previous)


def _wait_ready(label: str, proc: subprocess.Popen[bytes], log: Path) -> Target:
    deadline = time.monotonic() + STACK_START_S
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        api, cablecast = _API.search(text), _CABLECAST.search(text)
        if _READY in text and api and cablecast:
            return Target(label, api.group(1), cablecast.group(1))
        if proc.poll() is not None:
            raise PairedRunError(
                f"the {label} stack exited with code {proc.returncode}:\n{log_tail(log)}"
            )
        time.sleep(0.5)
    raise PairedRunError(f"the {label} stack was not ready within {STACK_START_S:g} s")


def run_slice(
    target: Target,
    run_dir: Path,
    paired: PairedSettings,
    env: dict[str, str],
    flags: Sequence[str] = (),
) -> None:
    """One headless Locust run of ``paired.slice_s`` seconds against one stack (``flags``:
    what the target needs on top, e.g. a hosted app's profile and source addresses).

    --allow-silent: a slice is a measurement, shorter than the workload's cycle (an editor
    may not have a VOD of its own to edit yet); the tally is still in each slice's meta."""
    run_dir.mkdir(parents=True)
    cmd = [
        sys.executable, "-m", "locust", "-f", paired.locustfile, "--headless",
        "-u", str(paired.users), "-r", f"{paired.spawn_rate:g}", "-t", f"{paired.slice_s:g}s",
        "--stop-timeout", f"{paired.stop_timeout_s:g}", "--only-summary",
        "--exit-code-on-error", "0", "--allow-silent", "--host", target.api_url,
        "--cablecast-url", target.cablecast_url, "--run-dir", str(run_dir),
        *paired.locust_flags, *flags,
    ]  # fmt: skip
    log = run_dir / "locust.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            env=env | {"LOADKIT_SEED": str(paired.seed)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        code = proc.wait(paired.slice_s + paired.stop_timeout_s + SLICE_SLACK_S)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        stop_groups([proc], 5.0)
    if code != 0:
        raise PairedRunError(
            f"the Locust slice against the {target.label} stack failed "
            f"({'timed out' if code is None else f'exit {code}'}):\n{log_tail(log)}"
        )


def slice_samples(run_dir: Path, pair: int, side: str, paired: PairedSettings) -> pd.DataFrame:
    """A slice's samples in its measured window (after the warm-up, before the end)."""
    samples = load_run(run_dir).samples
    keep = (samples["t"] >= paired.warmup_s) & (samples["t"] < paired.slice_s)
    return samples[keep].assign(pair=pair, side=side, name=samples["name"].astype(str))


def run_paired(
    ref: str,
    paired: PairedSettings,
    candidate_regression: str | None = None,
    progress: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Every slice's samples (with ``pair`` and ``side``); see :mod:`analysis.paired`."""
    commit = resolve_ref(ref)
    env = dict(os.environ)
    with terminate_as_interrupt(), work_folder() as work:
        tree = work / "ref"
        export_tree(commit, tree)
        if not same_file(REPO_ROOT / SPLICE, tree / SPLICE):
            env["FAULTS_DATA_PLANE"] = "python"  # REF's extension is not built: same plane
            progress("REF's fault-server extension differs: both stacks forward in Python")
        specs = [("baseline", tree, None), ("candidate", REPO_ROOT, candidate_regression)]
        progress(
            f"starting the baseline stack ({ref} = {commit[:12]}) and the candidate stack "
            f"(this tree{', regression ' + candidate_regression if candidate_regression else ''})"
        )
        with stacks(specs, work, env) as targets:
            by_side = {t.label: t for t in targets}
            order = slice_order(paired.slices)
            frames = []
            for i, (pair, side) in enumerate(order):
                run_dir = work / "slices" / f"{i:02d}-{side}"
                run_slice(by_side[side], run_dir, paired, env)
                frame = slice_samples(run_dir, pair, side, paired)
                frames.append(frame)
                p95 = frame["latency_ms"].quantile(0.95) if len(frame) else float("nan")
                progress(
                    f"slice {i + 1}/{len(order)} pair {pair + 1} {side:9}: "
                    f"{len(frame)} requests, p95 {p95:.1f} ms, "
                    f"{int((~frame['ok']).sum())} errors"
                )
        return pd.concat(frames, ignore_index=True)
