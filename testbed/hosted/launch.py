"""Commands and environment of a hosted app's processes (web, worker, schema step).

The app's processes see only what config/apps/NAME.toml gives them: its venv first on
PATH, our import stand-ins then its checkout on PYTHONPATH, every dependency URL through
a fault proxy, and (if the spec asks) a private mount namespace where /mnt is a folder of
the state dir, because the app writes to hard-coded paths under /mnt.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from testbed.hosted.spec import HostedApp, render
from testbed.processes import StackError, log_tail

SCHEMA_SCRIPT = Path(__file__).resolve().with_name("schema.py")
SCHEMA_TIMEOUT_S = 120.0
# Variables of the toolkit's own environment that must not leak into the app's.
_NOT_INHERITED = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "DATABASE_URL", "REDIS_URL")


@dataclass(frozen=True)
class Launch:
    """Everything needed to start the hosted app's processes."""

    cwd: Path
    env: dict[str, str]
    web: list[str]
    worker: list[str]
    schema: list[str]


def prepare(
    app: HostedApp, src: Path, venv: Path, root: Path, state: Path, values: dict[str, str]
) -> Launch:
    """Render the spec for this stack: `values` holds host, port and the proxied URLs."""
    state.mkdir(parents=True, exist_ok=True)
    for folder in app.mount_dirs:
        (state / folder).mkdir(parents=True, exist_ok=True)
    values = dict(values, state=str(state))
    if app.tls:
        cert, key = self_signed_certificate(state / "tls", values["host"])
        values |= {"tls_cert": str(cert), "tls_key": str(key)}
    else:
        values |= {"tls_cert": "", "tls_key": ""}
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    paths = [str(root / app.standins_path)] if app.standins_path else []
    env |= {
        "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        "VIRTUAL_ENV": str(venv),
        "PYTHONPATH": os.pathsep.join([*paths, str(src)]),
    }
    env |= {name: render(value, values) for name, value in app.env.items()}
    mounts = {target: state / folder for target, folder in app.mounts.items()}

    def command(argv: tuple[str, ...] | list[str]) -> list[str]:
        rendered = [render(arg, values) for arg in argv]
        exe = venv / "bin" / rendered[0]
        if exe.is_file():
            rendered[0] = str(exe)
        return in_namespace(rendered, mounts)

    return Launch(
        cwd=src,
        env=env,
        web=command(app.web_argv),
        worker=command(app.worker_argv) if app.worker_argv else [],
        schema=command([str(venv / "bin" / "python"), str(SCHEMA_SCRIPT)]),
    )


def in_namespace(argv: list[str], mounts: dict[str, Path]) -> list[str]:
    """`argv` run in a private mount namespace with each target bind-mounted from its folder.

    unshare(1) execs in place (no fork), and so does the shell, so the pid the stack
    watches and signals is the app's own process. Not root: a user namespace maps us to
    root inside it, which lets the mount happen without privileges on the host.
    """
    if not mounts:
        return argv
    unshare = shutil.which("unshare")
    if unshare is None:
        raise StackError(
            "the hosted app needs unshare(1) (util-linux) for its private /mnt; install it"
        )
    binds = " && ".join(
        f"mount --bind {shlex.quote(str(folder))} {shlex.quote(target)}"
        for target, folder in mounts.items()
    )
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    return [
        unshare,
        *user,
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        f'{binds} && exec "$@"',
        "sh",
        *argv,
    ]


def self_signed_certificate(folder: Path, host: str) -> tuple[Path, Path]:
    """A certificate for `host` (made once per state dir): the app serves HTTPS as in production."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    if cert.is_file() and key.is_file():
        return cert, key
    openssl = shutil.which("openssl")
    if openssl is None:
        raise StackError("the hosted app serves HTTPS: openssl is needed to make its certificate")
    folder.mkdir(parents=True, exist_ok=True)
    argv = [
        openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        "-subj", f"/CN={host}", "-addext", f"subjectAltName=IP:{host}",
        "-keyout", str(key), "-out", str(cert),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise StackError(f"openssl could not make a certificate: {done.stderr.strip()}")
    return cert, key


def create_schema(launch: Launch, log_path: Path) -> None:
    """Run our schema step in the app's venv: its models' tables, created if missing."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"\n=== schema: {' '.join(launch.schema)}\n".encode())
        log.flush()
        try:
            code = subprocess.run(
                launch.schema,
                cwd=launch.cwd,
                env=launch.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=SCHEMA_TIMEOUT_S,
                start_new_session=True,
            ).returncode
        except subprocess.TimeoutExpired:
            code = -1
    if code != 0:
        raise StackError(
            f"creating the hosted app's schema failed (exit {code}); "
            f"last lines of {log_path}:\n{log_tail(log_path)}"
        )
