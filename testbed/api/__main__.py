"""`python -m testbed.api --host H --port P`: serve the Archivist API with uvicorn.

Reads ARCHIVIST_DATABASE_URL, ARCHIVIST_REDIS_URL, ARCHIVIST_CABLECAST_URL (required),
ARCHIVIST_REGRESSION and ARCHIVIST_CONFIG; a missing or bad one exits 2 with a message.
"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from testbed.api.app import create_app
from testbed.api.settings import ConfigError, load_process_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m testbed.api",
        description="Reference Archivist API (VODs in PostgreSQL, sessions and cache in Redis, "
        "publishing to Cablecast). Environment: ARCHIVIST_DATABASE_URL, ARCHIVIST_REDIS_URL, "
        "ARCHIVIST_CABLECAST_URL (required); ARCHIVIST_REGRESSION=slow-list|no-cache, "
        "ARCHIVIST_CONFIG (default config/archivist.toml).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="port to bind")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning"])
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0..65535, got {args.port}")
    try:
        config, endpoints = load_process_settings(args.log_level)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        create_app(config, endpoints),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=3,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
