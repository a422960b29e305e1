"""Ray clusters on loopback: start one on this machine, join one, stop the ones we started by process id.

Never ``ray stop``: it ends every Ray process on the machine, other people's clusters included. A
:class:`Cluster` remembers the processes it started and stops exactly those.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from searchkit.errors import ClusterError, InputError

LOOPBACK = "127.0.0.1"
# RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps a one-node cluster on 127.0.0.1 instead of the machine's network address,
# and so forbids other nodes to join. A cluster that nodes join needs it set to 1 before Ray is imported; do that
# only inside a private network namespace (where Ray falls back to 127.0.0.1) or on a real, trusted cluster network.
# Token auth (Ray's default) is set explicitly, so that nodes started with `ray start` can join with the same token.
# Workers run at the driver's priority (Ray's default nices them by 15, and then any busy process starves the shards
# and embedding actors that searchkit's answers wait on).
# Ray reads these when it is imported: import this module before ``ray``. Values already in the environment win.
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_worker_niceness": "0"}  # fmt: skip
for _key, _value in RAY_ENV.items():
    os.environ.setdefault(_key, _value)


def ray_env() -> dict[str, str]:
    """Return a copy of ``os.environ`` with the settings every Ray command of searchkit runs under."""
    return {**RAY_ENV, **os.environ}


def _ray_cli() -> str:
    """Return the path of the ``ray`` command that belongs to this Python."""
    here = Path(sys.executable).with_name("ray")
    found = str(here) if here.is_file() else shutil.which("ray")
    if found is None:
        raise ClusterError("the 'ray' command is not installed: pip install -r requirements.txt")
    return found


def process_tree(pids: list[int]) -> list[int]:
    """Return ``pids`` and every live process below them."""
    import psutil

    out: list[int] = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            out += [pid] + [c.pid for c in p.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    return sorted(set(out))


def kill_pids(pids: list[int], grace_s: float = 5.0) -> None:
    """Send SIGTERM to ``pids`` (and their children), then SIGKILL whatever is still alive after ``grace_s``."""
    import psutil

    procs = []
    for pid in process_tree(pids):
        try:
            procs.append(psutil.Process(pid))
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(alive, timeout=grace_s)


@dataclass
class Cluster:
    """A Ray cluster this process is connected to; ``stop()`` ends only what ``start_local``/``join`` started."""

    address: str
    owned: bool
    pids: list[int] = field(default_factory=list)

    def stop(self) -> None:
        """Disconnect from Ray and end every process this handle started (and their children)."""
        import ray

        tree = process_tree(self.pids)  # read before shutdown: raylet's workers die with it
        if ray.is_initialized():
            ray.shutdown()
        kill_pids(tree)
        self.pids = []

    def join(self, num_cpus: float = 1, attempts: int = 5) -> int:
        """Start one more node on this machine that joins this cluster; return its process id (stopped by ``stop``).

        Ray gives a new node a fixed 30 s to register (not configurable); with both cores busy that ran out three
        times in a row in a clean-clone run, so a failed start is retried up to ``attempts`` times.
        """
        for attempt in range(1, attempts + 1):
            try:
                return self._join_once(num_cpus)
            except ClusterError:
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")

    def _join_once(self, num_cpus: float) -> int:
        import ray

        before = sum(n["Alive"] for n in ray.nodes())
        log = tempfile.NamedTemporaryFile(prefix="searchkit-ray-join-", suffix=".log", delete=False)
        proc = subprocess.Popen(
            [_ray_cli(), "start", "--address", self.address, "--node-ip-address", LOOPBACK,
             "--num-cpus", str(num_cpus), "--block", "--disable-usage-stats"],
            env=ray_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            _wait(lambda: sum(n["Alive"] for n in ray.nodes()) > before, f"a node to join {self.address}", proc)
        except ClusterError as e:
            kill_pids([proc.pid])
            tail = Path(log.name).read_text(errors="replace").strip().splitlines()[-1:]
            raise ClusterError(f"{e}; it said: {' | '.join(tail)}") from None
        finally:
            log.close()
            Path(log.name).unlink(missing_ok=True)
        self.pids.append(proc.pid)
        return proc.pid

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _wait(ready, what: str, proc: subprocess.Popen | None = None, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if proc is not None and proc.poll() is not None:
            raise ClusterError(f"waiting for {what}: the ray process exited with status {proc.returncode}")
        if time.monotonic() > deadline:
            raise ClusterError(f"waited {timeout_s:.0f} s for {what}: is the machine overloaded? try again")
        time.sleep(0.2)


def start_local(num_cpus: float = 2) -> Cluster:
    """Start a one-node Ray cluster on 127.0.0.1 inside this process and connect to it; ``stop()`` it when done.

    Other nodes of this machine can ``join`` it (``Cluster.join``), as other machines would with ``ray start``.
    """
    import ray

    if ray.is_initialized():
        raise ClusterError("this process is already connected to a Ray cluster: stop() it first")
    return _start_in_process(num_cpus)


def _start_in_process(num_cpus: float, attempts: int = 5) -> Cluster:
    """``ray.init`` a new local cluster; retry when Ray's fixed 30 s start-up wait runs out on a busy machine."""
    import psutil
    import ray

    before = {c.pid for c in psutil.Process().children(recursive=True)}
    for attempt in range(1, attempts + 1):
        try:
            ctx = ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, _node_ip_address=LOOPBACK,
                           log_to_driver=False, configure_logging=False)  # fmt: skip
        except Exception as e:  # Ray raises plain Exception when its raylet is slow to register
            started = [c.pid for c in psutil.Process().children() if c.pid not in before]
            Cluster("", owned=True, pids=started).stop()
            if attempt == attempts:
                raise ClusterError(f"Ray did not start in {attempts} attempts ({e}): is the machine overloaded?") from None
            continue
        pids = [c.pid for c in psutil.Process().children() if c.pid not in before]
        return Cluster(ctx.address_info["address"], owned=True, pids=pids)
    raise AssertionError("unreachable")


def connect(address: str) -> Cluster:
    """Connect to a running cluster at ``address`` ('HOST:PORT', or 'auto' for the one started on this machine)."""
    import ray

    if not isinstance(address, str) or not address or (address != "auto" and ":" not in address):
        raise InputError(f"Ray address must be 'HOST:PORT' (as printed by 'ray start --head') or 'auto', got {address!r}")
    try:
        ctx = ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ClusterError(
            f"cannot reach a Ray cluster at {address!r} ({first}): start one with 'ray start --head' or leave out --ray"
        ) from None
    return Cluster(ctx.address_info["address"], owned=False)


def start_or_connect(address: str | None, num_cpus: float = 2) -> Cluster:
    """Connect to ``address`` if given, else start a local cluster (what ``serve --ray`` does)."""
    return start_local(num_cpus) if address is None else connect(address)


def node_addresses() -> list[str]:
    """Return the address of every live node of the connected cluster."""
    import ray

    return [n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]]


def listening_sockets(pids: list[int]) -> list[tuple[int, str, str, int]]:
    """Return ``(pid, name, ip, port)`` for every TCP/UDP socket the processes ``pids`` (and children) listen on."""
    import psutil

    out = []
    for pid in process_tree(pids):
        try:
            p = psutil.Process(pid)
            conns = p.net_connections(kind="inet")
            name = p.name()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for c in conns:
            if c.status == psutil.CONN_LISTEN or (c.type == socket.SOCK_DGRAM and not c.raddr):
                out.append((pid, name, c.laddr.ip, c.laddr.port))
    return out


def is_loopback(ip: str) -> bool:
    """True for 127.0.0.0/8, ::1 and their IPv4-mapped IPv6 forms."""
    import ipaddress

    addr = ipaddress.ip_address(ip)
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback
