"""The distributed run across "hosts" that share neither a network nor a disk.

The master and each of two workers run in a network namespace of their own; the workers
also in a mount namespace of their own, with a private tmpfs mounted over the very path
that is the master's run folder (and their own --run-dir): whatever a worker writes there
only it sees, and it is gone when it exits. So the master's folder can only be complete
if the data travelled over the network, as it must between real hosts.

How they are connected: one user namespace the test owns (held by a sleeping
``unshare -r`` process) owns all three network namespaces, so ``ip`` run in it may create
links between them, as a root on the host would with ``ip netns``: a bridge in the
master's namespace (10.77.0.1/24, the "LAN") and, per worker, a veth pair with one end on
the bridge and the other the worker's eth0 (10.77.0.2, .3). The workers reach the master
only over that bridge. The reference stack stays on the host's 127.0.0.1, which no
namespace can reach; each namespace gets its own 127.0.0.1 listeners for the stack's ports
that carry connections through Unix socket files to the host (tests/locustfiles/relay.py),
so the stack's URLs work unchanged everywhere and no traffic leaves 127.0.0.1 or the
namespaces created here.

Skipped, with the failing command's own words, where unprivileged user namespaces,
network or mount namespaces, a tmpfs mount in one, veth pairs or bridges are not allowed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from faults.embedded import free_port
from tests.conftest import process_group, run_module, serving
from tests.locustfiles.distributed import (
    LOAD,
    Cluster,
    check_audit,
    check_run_dir_is_the_workers,
    check_worker_complete,
    distributed,
    master_file,
    meta_of,
    rows_of,
    target,
)
from tests.locustfiles.relay import UnixToTcp
from workload.inbox import file_stem

NET = "10.77.0"
RELAY = Path(__file__).with_name("relay.py")

# Run in each namespace before its Locust: loopback up, (for a worker) the private tmpfs,
# the stack's ports relayed, then wait for the test to link the namespaces.
SCRIPT = r"""
set -e
role=$1; shift
ip link set lo up
if [ -n "$PRIVATE_DIR" ]; then mount -t tmpfs "private-$role" "$PRIVATE_DIR"; fi
pids=""
for port in $RELAY_PORTS; do
    "$PYTHON" "$RELAY" "$port" "$SOCKETS/$port.sock" "$SOCKETS/listening-$role-$port" &
    pids="$pids $!"
done
for port in $RELAY_PORTS; do
    while [ ! -e "$SOCKETS/listening-$role-$port" ]; do sleep 0.05; done
done
touch "$SOCKETS/up-$role"
while [ ! -e "$SOCKETS/linked" ]; do sleep 0.05; done
set +e
"$@"
code=$?
kill $pids 2>/dev/null
exit $code
"""


def namespaces_refused() -> str:
    """Why this machine cannot run the test ("" when it can): the steps it needs, tried."""
    if not all(shutil.which(tool) for tool in ("unshare", "nsenter", "ip")):
        return "needs unshare, nsenter and ip (util-linux, iproute2) on PATH"
    probe = r"""
        set -e
        d=$(mktemp -d)
        unshare -n sleep 10 & a=$!
        unshare -n -m sh -c "mount -t tmpfs probe $d && sleep 10" & b=$!
        sleep 0.5
        nsenter -t $a -n ip link add br0 type bridge
        nsenter -t $a -n ip link add m0 type veth peer name eth0 netns $b
        kill $a $b
        rmdir $d
    """
    try:
        done = subprocess.run(
            ["unshare", "-r", "sh", "-c", probe], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare -r: {exc}"
    if done.returncode != 0:
        return f"user/network/mount namespaces, tmpfs, veth or bridge refused: {done.stderr}"
    return ""


@dataclass
class Namespaces:
    """The user namespace that owns the others, and where the relays' socket files are."""

    holder: int
    sockets: Path
    ports: list[int]

    def ip(self, pid: int, commands: str) -> None:
        """`commands` (ip ...) in the network namespace of process `pid`."""
        cmd = ["nsenter", "-t", str(self.holder), "-U", "--", "nsenter", "-t", str(pid), "-n"]
        done = subprocess.run(
            [*cmd, "sh", "-c", commands], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, f"{commands}: {done.stderr}"

    def wrap(self, role: str, cmd: list[str], private_dir: Path | None) -> list[str]:
        """`cmd` started in new namespaces owned by the holder's user namespace."""
        kinds = ["-n", "-m"] if private_dir else ["-n"]
        env = [
            f"PRIVATE_DIR={private_dir or ''}", f"RELAY_PORTS={' '.join(map(str, self.ports))}",
            f"SOCKETS={self.sockets}", f"RELAY={RELAY}", f"PYTHON={sys.executable}",
        ]  # fmt: skip
        return [
            "nsenter", "-t", str(self.holder), "-U", "--", "unshare", *kinds, "--",
            "env", *env, "sh", "-c", SCRIPT, "namespaced", role, *cmd,
        ]  # fmt: skip

    def link(self, run: Cluster) -> None:
        """Once every namespace is up: the bridge, a veth per worker, then go."""
        deadline = time.monotonic() + 60
        for side in (run.master, *run.workers):
            while not (self.sockets / f"up-{side.role}").exists():
                assert side.proc.poll() is None, side.text()[-3000:]
                assert time.monotonic() < deadline, f"{side.role}'s namespace never came up"
                time.sleep(0.05)
        master = run.master.proc.pid
        self.ip(master, f"ip link add br0 type bridge && ip addr add {NET}.1/24 dev br0")
        self.ip(master, "ip link set br0 up")
        for i, worker in enumerate(run.workers):
            self.ip(master, f"ip link add m{i} type veth peer name eth0 netns {worker.proc.pid}")
            self.ip(master, f"ip link set m{i} master br0 && ip link set m{i} up")
            self.ip(worker.proc.pid, f"ip addr add {NET}.{i + 2}/24 dev eth0")
            self.ip(worker.proc.pid, "ip link set eth0 up")
        (self.sockets / "linked").touch()


@contextmanager
def namespaced_cluster(stack, tmp: Path, args: list[str]) -> Iterator[Cluster]:
    """A master and two workers in namespaces of their own (see the module doc), linked
    and running; every process (holder, relays, Locust) stopped at the end of the block."""
    if reason := namespaces_refused():
        pytest.skip(reason)
    ports = sorted({urlsplit(u).port or 80 for u in target_urls(stack)})
    sockets = tmp / "sockets"
    sockets.mkdir()
    master_dir = tmp / "master"
    master_dir.mkdir()  # the workers mount their private tmpfs over this very path
    with ExitStack() as stack_:
        for port in ports:
            stack_.enter_context(serving(UnixToTcp(str(sockets / f"{port}.sock"), port)))
        holder = stack_.enter_context(
            process_group(["unshare", "-r", "sleep", "900"], stdin=subprocess.DEVNULL)
        )
        wait_for_user_namespace(holder.pid)
        spaces = Namespaces(holder.pid, sockets, ports)

        def wrap(role: str, cmd: list[str]) -> list[str]:
            return spaces.wrap(role, cmd, None if role == "master" else master_dir)

        run = stack_.enter_context(
            distributed(
                tmp, args, port=free_port(), master_host=f"{NET}.1", bind_host="*",
                worker_dirs=[master_dir, master_dir], wrap=wrap,
            )
        )  # fmt: skip
        spaces.link(run)
        yield run


def target_urls(stack) -> list[str]:
    return [stack.api_url, stack.cablecast_url, stack.fault_url]


def wait_for_user_namespace(pid: int) -> None:
    """Until process `pid` runs in a user namespace other than this one's."""
    mine = os.readlink("/proc/self/ns/user")
    deadline = time.monotonic() + 10
    while os.readlink(f"/proc/{pid}/ns/user") == mine:
        assert time.monotonic() < deadline, "unshare -r never entered its user namespace"
        time.sleep(0.02)


def only_worker_files(master_dir: Path, client_ids: set[str]) -> None:
    """The master's folder holds per-worker files only: none a worker wrote itself there
    (requests-<pid>), which a shared disk would have let through."""
    expected = {f"requests-{file_stem(c)}.parquet" for c in client_ids}
    assert {p.name for p in master_dir.glob("requests-*.parquet")} <= expected


def test_namespaced_workers_ship_everything_to_the_master(clean_faults, tmp_path: Path) -> None:
    """The checks of test_distributed's first test, across namespaces: every request and
    acknowledged write of each worker in the master's folder, exact percentiles of their
    union, the audit against PostgreSQL."""
    args = [*LOAD, "-t", "10s", *target(clean_faults)]
    with namespaced_cluster(clean_faults, tmp_path, args) as run:
        assert run.master.wait(150) == 0, run.master.text()[-3000:]
        for worker in run.workers:
            assert worker.wait(60) == 0, worker.text()[-3000:]
    done = [check_worker_complete(run.master_dir, w) for w in run.workers]
    assert sum(ledger for _, ledger in done) > 0, "no acknowledged write for the audit"
    only_worker_files(run.master_dir, {client_id for client_id, _ in done})
    check_run_dir_is_the_workers(run.master_dir, run.workers)
    check_audit(run.master_dir, clean_faults.database_url)


def test_a_namespaced_worker_killed_mid_run_is_named_as_lost(clean_faults, tmp_path: Path) -> None:
    args = [*LOAD, "-t", "90s", *target(clean_faults)]
    with namespaced_cluster(clean_faults, tmp_path, args) as run:
        deadline = time.monotonic() + 90
        while len(list(run.master_dir.glob("requests-*.parquet"))) < 2:  # both have shipped
            assert run.master.proc.poll() is None, run.master.text()[-3000:]
            assert time.monotonic() < deadline, "the workers never shipped rows"
            time.sleep(0.2)
        killed = run.workers[1]
        os.killpg(killed.proc.pid, signal.SIGKILL)  # the worker's whole "host": relays too
        killed.proc.wait(10)
        run.stop_file.touch()
        run.master.wait(150)
        assert run.workers[0].wait(60) == 0, run.workers[0].text()[-3000:]
    kept_id, _ = check_worker_complete(run.master_dir, run.workers[0])
    workers = meta_of(run.master_dir)["workers"]
    [lost_id] = set(workers) - {kept_id}
    received = len(rows_of(master_file(run.master_dir, lost_id)))
    assert workers[lost_id]["ended"] == "lost"
    assert workers[lost_id]["rows_received"] == received > 0
    summary = run_module("analysis", "summary", str(run.master_dir), timeout=120)
    assert summary.returncode == 0, summary.stderr
    assert f"worker {lost_id} was LOST before its final report" in summary.stdout
    assert f"({received} requests, " in summary.stdout
