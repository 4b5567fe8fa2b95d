"""`python -m testbed up`: the whole reference stack in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TextIO

import psutil

from testbed.guardian import StackRecord, refuse_if_running, stop_leftovers
from testbed.hosted.spec import known_apps
from testbed.stack import Stack, StackError, StackSettings, start_stack
from testbed.stack_settings import (
    DEFAULT_CONFIG,
    PORT_NAMES,
    PROXY_NAMES,
    REGRESSIONS,
    REPO_ROOT,
)

EXAMPLES = """\
examples:
  python -m testbed up                      ports from config/stack.toml, state in .stack/
  python -m testbed up --free-ports         any free ports (several stacks side by side)
  python -m testbed up --api-port 9000 --regression slow-list
  DATABASE_URL=postgresql://me@127.0.0.1:5432/archivist python -m testbed up
                                            use that PostgreSQL, start none of our own
  python -m testbed up --app archivist-flask --app-src ~/src/Archivist
                                            host a real Archivist checkout instead of the
                                            reference API (config/apps/archivist-flask.toml)
  python -m testbed status                  what the stack in .stack/ runs
  python -m testbed down                    stop the stack of .stack/, or what a killed one left

environment: DATABASE_URL, REDIS_URL and TOXIPROXY_URL name servers that already run.
"""


# Ctrl-C, `kill`, and a closed terminal: each stops the whole stack, never only this process.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


PORT_HELP = {
    "api": "the Archivist API",
    "fault_api": "the fault server's HTTP API (Toxiproxy-compatible)",
    "postgres": "PostgreSQL itself (the app connects through its proxy)",
    "redis": "Redis itself (the app connects through its proxy)",
    "cablecast": "the Cablecast simulator itself (the app goes through its proxy)",
}


class _Stop(BaseException):
    """Raised from a signal handler to abandon a start-up in progress.

    A BaseException, like KeyboardInterrupt, so no `except Exception` on the way swallows it.
    """


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m testbed",
        description="Run the reference Archivist stack: PostgreSQL, Redis, the fault "
        "server with its proxies, the Cablecast simulator, the API and its workers.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = commands.add_parser(
        "up",
        help="start the stack, print its URLs, stay up until Ctrl-C or SIGTERM",
        description="Start every part, wait until all are healthy, print the URLs and stay\n"
        "in the foreground. Ctrl-C or SIGTERM stops everything; so does any part that\n"
        "dies (exit code 1, with its log tail). Ports default to --config's.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    up.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="stack TOML (default: %(default)s)"
    )
    up.add_argument("--state-dir", type=Path, help="data and logs (default: from config)")
    up.add_argument("--free-ports", action="store_true", help="use any free ports")
    up.add_argument(
        "--fresh",
        action="store_true",
        help="start from empty state: drop the PostgreSQL data, Cablecast state and logs",
    )
    for name in PORT_NAMES:
        flag = name.replace("_", "-")
        up.add_argument(f"--{flag}-port", type=_port, metavar="PORT", help=PORT_HELP[name])
    for name in PROXY_NAMES:
        up.add_argument(
            f"--{name}-proxy-port", type=_port, metavar="PORT", help=f"port of the {name} proxy"
        )
    up.add_argument(
        "--workers", type=int, metavar="N", help="worker processes, 0..16 (default: from config)"
    )
    up.add_argument("--regression", choices=REGRESSIONS, help="start the API with a regression")
    up.add_argument(
        "--app",
        metavar="APP",
        help="which Archivist to run: " + ", ".join(known_apps(REPO_ROOT)) + " (a real "
        "checkout, hosted as config/apps/APP.toml says), or a hosting spec's .toml path "
        "(default: from config)",
    )
    up.add_argument(
        "--app-src", type=Path, metavar="PATH", help="the checkout --app runs (never edited)"
    )
    up.add_argument(
        "--app-redis-elsewhere",
        action="store_true",
        help="a hosted app's redis proxy gets a port of its own instead of the address the "
        "app hard-wires (config/apps [redis] proxy_port), which something else serves: the "
        "paired gate of two app versions runs one Redis there for both apps",
    )
    up.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop the stack when the process that started this one exits (for tools such as "
        "`locust --start-stack`, whose own crash must not leave a stack holding the ports)",
    )
    status = commands.add_parser("status", help="which stack processes run (from pids.json)")
    down = commands.add_parser(
        "down",
        help="stop the stack of a state dir, or whatever a killed one left running",
        description="Stop the stack recorded in STATE/pids.json. A running `up` is asked to\n"
        "stop (SIGTERM) and waited for. If its orchestrator is gone (killed, crashed),\n"
        "the processes it recorded are stopped instead: exactly those (pid and start time\n"
        "must match, so a recycled pid is never hit), PostgreSQL with an immediate\n"
        "shutdown. Usually the stack's guardian has done that already; `up` does it too\n"
        "before starting in the same state dir. Exit 0 also when nothing was running.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for sub in (status, down):
        sub.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="stack TOML")
        sub.add_argument("--state-dir", type=Path, help="state folder (default: from config)")
    return parser


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{port} is not a port (1..65535)")
    return port


def settings_from(args: argparse.Namespace) -> StackSettings:
    settings = StackSettings.from_config(args.config, free_ports=args.free_ports)
    ports = dict(settings.ports)
    proxy_ports = dict(settings.proxy_ports)
    for name in PORT_NAMES:
        value = getattr(args, f"{name}_port")
        if value is not None:
            ports[name] = value
    for name in PROXY_NAMES:
        value = getattr(args, f"{name}_proxy_port")
        if value is not None:
            proxy_ports[name] = value
    changes: dict[str, object] = {"ports": ports, "proxy_ports": proxy_ports}
    if ports != settings.ports or proxy_ports != settings.proxy_ports:
        changes["free_ports"] = False  # a port asked for by name is never silently moved
    if args.state_dir is not None:
        changes["state_dir"] = args.state_dir.resolve()
    if args.workers is not None:
        changes["workers"] = args.workers
    if args.regression:
        changes["app_env"] = settings.app_env | {"ARCHIVIST_REGRESSION": args.regression}
    if args.app is not None:
        changes["app"] = args.app
    if args.app_src is not None:
        changes["app_src"] = args.app_src
    if args.app_redis_elsewhere:
        changes["pin_app_redis"] = False
    settings = dataclasses.replace(settings, **changes)  # type: ignore[arg-type]
    settings.validate()
    return settings


def wipe_state(state_dir: Path) -> None:
    """Remove what an earlier run left in `state_dir` (only the stack's own entries)."""
    for name in ("postgres", "redis", "logs"):
        shutil.rmtree(state_dir / name, ignore_errors=True)
    for path in [*state_dir.glob("cablecast.sqlite*"), state_dir / "pids.json"]:
        path.unlink(missing_ok=True)


def up(settings: StackSettings, exit_with_parent: bool = False) -> int:
    stop_requested = threading.Event()
    parent = os.getppid()

    def abandon_start(signum: int, frame: FrameType | None) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)  # let the clean-up of the start finish
        raise _Stop(signal.Signals(signum).name)

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    for sig in STOP_SIGNALS:
        signal.signal(sig, abandon_start)
    _say(f"starting the stack (state and logs in {settings.state_dir}) ...")
    try:
        stack = start_stack(settings)
    except _Stop as exc:
        _say(f"{exc}: start-up abandoned, everything stopped", sys.stderr)
        return 130
    for sig in STOP_SIGNALS:
        signal.signal(sig, request_stop)
    try:
        _print_ready(stack)
        while not stop_requested.is_set() and not stack.wait(0.2):
            # A dead parent re-parents us (to init or a subreaper): no signal arrives for it.
            if exit_with_parent and os.getppid() != parent:
                _say(f"the parent process {parent} is gone: stopping", sys.stderr)
                break
    finally:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
        _say("stopping the stack ...")
        stack.stop()
    if stack.failure:
        _say(f"error: {stack.failure}", sys.stderr)
        return 1
    _say("stopped")
    return 0


def _print_ready(stack: Stack) -> None:
    assert stack.startup_seconds is not None
    lines = [
        f"stack ready in {stack.startup_seconds:.1f} s",
        f"  API          {stack.api_url}  ({stack.hosted.title if stack.hosted else 'reference'})",
        f"  fault server {stack.fault_url}  (proxies: {', '.join(sorted(stack.faults.proxies()))})",
        f"  Cablecast    {stack.cablecast_url}  (direct; the app goes through the proxy)",
        f"  PostgreSQL   {stack.database_url}  (direct)",
        f"  Redis        {stack.redis_url}  (direct)",
        f"  logs         {stack.log_dir}",
        f"  pids         {json.dumps(stack.pids())}",
    ]
    if stack.fixtures_path is not None:  # what the workload publishes (--fixtures PATH)
        lines.append(f"  fixtures     {stack.fixtures_path}")
    lines.append("press Ctrl-C to stop")
    _say("\n".join(lines))


def _say(text: str, stream: TextIO | None = None) -> None:
    """Print, but never let a closed pipe (`| head`) skip stopping the stack."""
    with contextlib.suppress(OSError):
        print(text, file=stream or sys.stdout, flush=True)


def status(settings: StackSettings) -> int:
    path = settings.state_dir / "pids.json"
    record = StackRecord.read(path)
    if record is None:
        print(f"no stack runs from {settings.state_dir} (no readable {path.name})")
        return 1
    owner = record.owner.process() is not None
    print(f"{'owner':10} pid {record.owner.pid:<8} {'up' if owner else 'dead (run: down)'}")
    for name, rec in record.children.items():
        print(f"{name:10} pid {rec.pid:<8} {'running' if rec.process() else 'gone'}")
    return 0


DOWN_WAIT_S = 60.0  # a whole stack's stop on a loaded box, with room


def down(state_dir: Path) -> int:
    record = StackRecord.read(state_dir / "pids.json")
    if record is None:
        print(f"nothing recorded in {state_dir}: no stack to stop")
        return 0
    owner = record.owner.process()
    if owner is not None:
        print(f"asking the stack of {state_dir} (pid {owner.pid}) to stop ...", flush=True)
        with contextlib.suppress(psutil.Error):
            owner.terminate()
            owner.wait(DOWN_WAIT_S)
    stopped = stop_leftovers(state_dir)  # raises if the owner outlived the wait
    if owner is not None:
        print("stopped")
    elif stopped:
        print(f"its orchestrator was gone; stopped what it left: {', '.join(stopped)}")
    else:
        print("its orchestrator was gone and nothing of it ran any more")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command in ("status", "down"):
            settings = StackSettings.from_config(args.config)
            if args.state_dir is not None:
                settings.state_dir = args.state_dir.resolve()
            return status(settings) if args.command == "status" else down(settings.state_dir)
        settings = settings_from(args)
        refuse_if_running(settings.state_dir)  # before saying "starting"
        if args.fresh:
            stop_leftovers(settings.state_dir)  # refuses while a stack runs from it
            wipe_state(settings.state_dir)
        return up(settings, exit_with_parent=args.exit_with_parent)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if "in use" in str(exc) and args.command == "up":
            print(
                "hint: a stack from an earlier run may still hold it: "
                "python -m testbed status / down (--state-dir of that run)",
                file=sys.stderr,
            )
        return 2


if __name__ == "__main__":
    sys.exit(main())
