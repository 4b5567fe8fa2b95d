"""A stack for one command: free ports, a throwaway state folder, always stopped.

`reference_stack` starts the testbed stack (config/stack.toml, or another stack TOML) on
ports the OS says are free, with its state in a temporary folder, and yields it as a
`Target` carrying the hosted app's Locust flags (config/apps/NAME.toml [load] options);
on leaving - success, an error, Ctrl-C - the stack is stopped and its state removed.
Resilience experiments and the gate's own load start their stacks here.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from testbed.processes import StackError
from testbed.target import Target

APP_LOG_STEMS = ("api", "worker")  # the reference stack's app logs: api.log, worker*.log


class StackStartError(StackError):
    """The stack did not start (or failed while in use); the message says why."""


@contextmanager
def reference_stack(
    app: str | None = None,
    app_src: Path | None = None,
    config: Path | None = None,
    pin_app_redis: bool = True,
) -> Iterator[Target]:
    """Start the testbed stack on free ports; always stopped on leaving.

    `config`: the stack TOML (default config/stack.toml). `app` (a config/apps/NAME.toml)
    hosts that real Archivist from its checkout `app_src` instead of the reference API;
    None keeps what the stack TOML says. `pin_app_redis` False: see
    StackSettings.pin_app_redis (two versions of an app side by side).
    """
    from testbed.stack import StackSettings, running_stack  # imported when a stack starts
    from testbed.stack_settings import DEFAULT_CONFIG

    state_dir = Path(tempfile.mkdtemp(prefix="loadkit-experiment-stack-"))
    chosen: dict[str, Any] = {"app": app} if app is not None else {}
    chosen["pin_app_redis"] = pin_app_redis
    if app_src is not None:
        chosen["app_src"] = app_src
    try:
        settings = StackSettings.from_config(
            config or DEFAULT_CONFIG, free_ports=True, state_dir=state_dir, **chosen
        )
        hosted = settings.hosted_app()
        with running_stack(settings) as stack:
            yield Target(
                api_url=stack.api_url,
                fault_url=stack.fault_url,
                cablecast_url=stack.cablecast_url,
                database_url=stack.database_url,
                redis_url=stack.redis_url,
                app_logs=stack_app_logs(stack.log_dir),
                pids_file=stack.pids_file,
                load_options=dict(hosted.load_options) if hosted is not None else {},
                fixtures=stack.fixtures_path,
            )
    except StackError as exc:
        raise StackStartError(f"the reference stack did not start: {exc}") from None
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def stack_app_logs(log_dir: Path) -> tuple[Path, ...]:
    """The reference stack's application logs: the API's and the workers' (not those of
    PostgreSQL, Redis or the fault server, whose lines would not explain an answer)."""
    return tuple(
        p
        for p in sorted(log_dir.glob("*.log"))
        if p.stem in APP_LOG_STEMS or p.stem.startswith("worker-")
    )
