"""`python -m testbed.services DIR`: only PostgreSQL and Redis, on free ports, until Ctrl-C.

For developing the app processes without the whole stack: prints DATABASE_URL and
REDIS_URL as shell assignments, then waits.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from testbed.guardian import Guardian, Record
from testbed.ports import free_ports
from testbed.postgres import EmbeddedPostgres
from testbed.processes import StackError
from testbed.redis_server import EmbeddedRedis


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m testbed.services",
        description="Run an embedded PostgreSQL and Redis on free 127.0.0.1 ports until Ctrl-C.",
    )
    parser.add_argument("dir", type=Path, help="state folder (PostgreSQL data, logs)")
    parser.add_argument("--database", default="archivist", help="database to create")
    args = parser.parse_args(argv)

    pg_port, redis_port = free_ports("127.0.0.1", 2)
    pg = EmbeddedPostgres(args.dir / "postgres", "127.0.0.1", pg_port, args.database)
    rd = EmbeddedRedis(args.dir / "redis", "127.0.0.1", redis_port)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    # Stops both servers should this process be killed before its `finally` runs.
    guardian = Guardian(args.dir / "guardian.log")
    try:
        pg.launch()
        assert pg.process is not None and pg.process.pid is not None
        guardian.watch(
            Record.of("postgres", pg.process.pid, pg_data=str(pg.data_dir), run_as=pg.as_user)
        )
        pg.wait_ready()
        rd.launch()
        assert rd.process is not None and rd.process.pid is not None
        guardian.watch(Record.of("redis", rd.process.pid))
        rd.wait_ready()
        print(f"DATABASE_URL={pg.url}\nREDIS_URL={rd.url}", flush=True)
        while not done.wait(0.5):
            for proc in (pg.process, rd.process):
                if proc is not None and not proc.running():
                    print(f"{proc.name} died:\n{proc.log_tail()}", file=sys.stderr)
                    return 1
        return 0
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        rd.stop()
        pg.stop()
        guardian.close()


if __name__ == "__main__":
    sys.exit(main())
