"""``python -m faults.server``: a Toxiproxy-compatible fault server."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from faults.server import native
from faults.server.app import ConfigError, Options, load_config, run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m faults.server",
        description=(
            "Toxiproxy-compatible TCP fault server. Prints 'listening on http://HOST:PORT' "
            "on stdout once the API is bound; logs go to stderr."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="API address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8474, help="API port; 0 picks a free one (default 8474)"
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="JSON array of proxies to create at start (the /populate format)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="seed toxicity and jitter draws so the same connections get the same faults",
    )
    parser.add_argument(
        "--data-plane",
        choices=native.PLANES,
        help=(
            "how connections without toxics are forwarded: native (splice(2) in a C thread) "
            f"or python (default: ${native.ENV}, else native when built)"
        ),
    )
    parser.add_argument(
        "--busy-poll",
        type=int,
        default=0,
        metavar="USEC",
        help=(
            "after forwarding, poll for this many microseconds before sleeping (native "
            "data plane; like HAProxy's busy-polling): less added latency where waking "
            "up is slow, as on virtual machines, for CPU spent polling (default 0: off; "
            f"at most {native.MAX_BUSY_POLL_US})"
        ),
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port} is not in 0..65535")
    if not 0 <= args.busy_poll <= native.MAX_BUSY_POLL_US:
        parser.error(f"--busy-poll {args.busy_poll} is not in 0..{native.MAX_BUSY_POLL_US}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        proxies = load_config(args.config) if args.config else []
    except ConfigError as exc:
        print(f"faults.server: {exc}", file=sys.stderr)
        return 2
    try:
        plane = native.choose_plane(args.data_plane)
    except native.DataPlaneError as exc:
        print(f"faults.server: {exc}", file=sys.stderr)
        return 2
    if args.busy_poll and plane != "native":
        print(
            "faults.server: --busy-poll needs the native data plane, and this server "
            "forwards in python",
            file=sys.stderr,
        )
        return 2
    options = Options(
        host=args.host,
        port=args.port,
        proxies=proxies,
        seed=args.seed,
        data_plane=plane,
        busy_poll_us=args.busy_poll,
    )
    return run(options)


if __name__ == "__main__":
    sys.exit(main())
