"""Run the paired gate of two versions of a hosted app: OLD's stack and NEW's, in turn.

``gate --app APP --app-src NEW --against OLD``: what an Archivist developer changes is the
app, so both sides are this tree's testbed hosting one checkout each. OLD is a git ref of
NEW's repository (exported with ``git archive`` into a temporary folder, as the reference
paired gate exports REF) or the path of a second checkout (copied there, so neither
checkout is ever written to by the app they host).

The Flask Archivist hard-wires its rate limiter to ``redis://localhost:6379/0``, so two
copies cannot each have their own Redis there. Both stacks put their Redis proxy (the
app's cache, sessions and Celery queue) on ports of their own, and one Redis this module
starts serves the hard-wired address for both apps' limiter counters only. Between slices
it is emptied: each slice meets the limiter as a fresh set of clients would, and a side
never inherits the other's counters. See analysis/README.md ("Paired gate of two app
versions") for why not a network namespace per side.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import redis

from analysis.config import PairedSettings
from analysis.load import InputError
from analysis.paired import BASELINE, CANDIDATE, slice_order
from analysis.paired_run import (
    PairedRunError,
    Target,
    export_tree,
    resolve_ref,
    run_slice,
    slice_samples,
    work_folder,
)
from analysis.processes import terminate_as_interrupt
from testbed.hosted.seeding import copy_checkout
from testbed.hosted.spec import HostedApp, load_app, locust_flags
from testbed.processes import StackError
from testbed.redis_server import EmbeddedRedis
from testbed.throwaway_stack import StackStartError, reference_stack

REPO_ROOT = Path(__file__).resolve().parents[1]


def old_tree(against: str, new_src: Path, into: Path) -> tuple[Path, str]:
    """OLD's files in a folder of ``into`` and a label for it: a checkout's path is
    copied, anything else is a git ref of NEW's repository."""
    path = Path(against).expanduser()
    if path.is_dir():
        copy = into / "old" / path.resolve().name
        copy_checkout(path, copy)
        return copy, str(path)
    inside = subprocess.run(
        ["git", "rev-parse", "--git-dir"], cwd=new_src, capture_output=True, timeout=30
    )
    if inside.returncode != 0:
        raise InputError(
            f"--against {against}: not a folder, and {new_src} is not a git repository to "
            "take a ref from; give the path of OLD's checkout"
        )
    commit = resolve_ref(against, new_src)
    tree = into / "old" / new_src.name
    export_tree(commit, tree, new_src)
    return tree, f"{against} = {commit[:12]}"


def app_spec(app: str) -> HostedApp:
    try:
        return load_app(REPO_ROOT, app)
    except StackError as exc:
        raise InputError(str(exc)) from None


@contextlib.contextmanager
def limiter_redis(hosted: HostedApp, workdir: Path) -> Iterator[Callable[[], None]]:
    """The one Redis at the address the app hard-wires, for both sides' limiter counters;
    yields what empties it."""
    port = hosted.redis_proxy_port
    if not port:
        yield lambda: None  # the app takes Redis from its environment: nothing is shared
        return
    server = EmbeddedRedis(workdir / "limiter-redis", "127.0.0.1", port)
    try:
        server.start()
    except StackError as exc:
        raise PairedRunError(
            f"the Redis both apps' limiters use (127.0.0.1:{port}, hard-wired in "
            f"{hosted.name}) did not start; is the port taken? {exc}"
        ) from None
    client = redis.Redis.from_url(server.url, socket_timeout=5)

    def empty() -> None:
        client.flushdb()

    try:
        yield empty
    finally:
        client.close()
        server.stop()


def slice_flags(hosted: HostedApp, fixtures: Path | None) -> list[str]:
    """The Locust flags of one side's slices: the app's profile and its load options."""
    flags = ["--routes", hosted.routes, *locust_flags(dict(hosted.load_options))]
    return flags + (["--fixtures", str(fixtures)] if fixtures is not None else [])


def run_paired_apps(
    app: str,
    new_src: Path,
    against: str,
    paired: PairedSettings,
    progress: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Every slice's samples (with ``pair`` and ``side``), as ``run_paired`` answers them."""
    hosted = app_spec(app)
    new_src = new_src.expanduser().resolve()
    if not new_src.is_dir():
        raise InputError(f"--app-src {new_src}: not a folder (NEW's checkout)")
    env = dict(os.environ)
    with terminate_as_interrupt(), work_folder() as work, contextlib.ExitStack() as stacks:
        old_src, old_label = old_tree(against, new_src, work)
        empty_limiter = stacks.enter_context(limiter_redis(hosted, work))
        sides: dict[str, tuple[Target, list[str]]] = {}
        for side, src, label in ((BASELINE, old_src, old_label), (CANDIDATE, new_src, "NEW")):
            progress(f"starting the {side} stack: {app} from {label} ({src}) ...")
            try:
                stack = stacks.enter_context(reference_stack(app, src, pin_app_redis=False))
            except StackStartError as exc:
                raise PairedRunError(f"the {side} stack: {exc}") from None
            target = Target(side, stack.api_url, stack.cablecast_url or "")
            sides[side] = (target, slice_flags(hosted, stack.fixtures))
        frames = []
        order = slice_order(paired.slices)
        for i, (pair, side) in enumerate(order):
            empty_limiter()  # each slice's users are new clients to the limiter
            target, flags = sides[side]
            run_dir = work / "slices" / f"{i:02d}-{side}"
            run_slice(target, run_dir, paired, env, flags)
            frame = slice_samples(run_dir, pair, side, paired)
            frames.append(frame)
            p50 = frame["latency_ms"].median() if len(frame) else float("nan")
            progress(
                f"slice {i + 1}/{len(order)} pair {pair + 1} {side:9}: {len(frame)} requests, "
                f"p50 {p50:.1f} ms, {int((~frame['ok']).sum())} errors"
            )
        return pd.concat(frames, ignore_index=True)
