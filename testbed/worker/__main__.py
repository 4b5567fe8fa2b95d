"""`python -m testbed.worker`: run one worker process (several may run at once).

Reads ARCHIVIST_DATABASE_URL, ARCHIVIST_REDIS_URL, ARCHIVIST_CABLECAST_URL (required),
ARCHIVIST_WORKER_NAME (default hostname-pid) and ARCHIVIST_CONFIG. SIGTERM/SIGINT stop
it: running jobs get a short grace, and any unfinished job is reclaimed by another worker.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import socket
import sys

from testbed.api.cache import VodCache, make_redis
from testbed.api.db import make_pool
from testbed.api.settings import AppConfig, ConfigError, Endpoints, load_process_settings
from testbed.cablecast.client import CablecastClient
from testbed.worker.consumer import STUCK_MARGIN_S, Consumer
from testbed.worker.pipeline import Context

STOP_GRACE_S = 5.0


async def serve(config: AppConfig, endpoints: Endpoints, name: str) -> None:
    db_settings = dataclasses.replace(
        config.database, pool_min_size=1, pool_max_size=config.worker.concurrency + 1
    )
    pool = make_pool(endpoints.database_url, db_settings, f"worker-{name}")
    await pool.open(wait=False)
    client = make_redis(endpoints.redis_url, config.redis)
    cablecast = CablecastClient(endpoints.cablecast_url, config.cablecast)
    ctx = Context(
        pool,
        VodCache(client, config.cache.vod_ttl_s),
        cablecast,
        config.worker,
        db_timeout_s=config.database.statement_timeout_ms / 1000 + 2.0,
    )
    consumer = Consumer(
        client,
        config.queue,
        config.worker,
        ctx,
        name,
        new_redis=lambda: make_redis(endpoints.redis_url, config.redis),
        redis_bound_s=config.redis.socket_timeout_s + config.queue.block_ms / 1000 + STUCK_MARGIN_S,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(consumer.run(stop))
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if task.done() and not stop.is_set():
            # The consumer cannot end on its own: exit (non-zero if it raised) so that a
            # supervisor restarts the process, rather than stay alive and consume nothing.
            task.result()
            raise RuntimeError("the consumer stopped without being asked to")
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_GRACE_S)
        except TimeoutError:
            task.cancel()
    finally:
        stopping.cancel()
        await cablecast.aclose()
        await consumer.redis.aclose()  # the client in use: a wedged one may have been replaced
        await pool.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m testbed.worker",
        description="Archivist worker: consumes processing jobs from the Redis stream and "
        "publishes VODs to Cablecast. Environment: ARCHIVIST_DATABASE_URL, ARCHIVIST_REDIS_URL, "
        "ARCHIVIST_CABLECAST_URL (required); ARCHIVIST_WORKER_NAME, ARCHIVIST_CONFIG.",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    args = parser.parse_args(argv)
    try:
        config, endpoints = load_process_settings(args.log_level)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    name = os.environ.get("ARCHIVIST_WORKER_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    asyncio.run(serve(config, endpoints, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
