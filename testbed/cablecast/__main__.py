"""`python -m testbed.cablecast --host H --port P [--state FILE]`: run the simulator."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from testbed.api.settings import AppConfig, ConfigError
from testbed.cablecast.app import build_app
from testbed.cablecast.store import Store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m testbed.cablecast",
        description="Cablecast simulator: a subset of CablecastAPI v1 under /CablecastAPI/v1, "
        "with an audit of everything received at /CablecastAPI/v1/_audit/received.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="port to bind (0 = any free)")
    parser.add_argument(
        "--state", default=":memory:", help="SQLite file kept across restarts (default: memory)"
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0..65535, got {args.port}")
    try:
        config = AppConfig.load()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    store = Store(args.state, config.simulator.queued_s, config.simulator.processing_s)
    try:
        uvicorn.run(
            build_app(store, config),
            host=args.host,
            port=args.port,
            log_level="warning",
            access_log=False,
        )
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
