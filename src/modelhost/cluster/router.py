"""The routing tier of a local cluster: HAProxy on the one config template
(``deploy/k8s/components/routing/haproxy.cfg``) that the Kubernetes routing Deployment also uses.

In Kubernetes the template's replica slots are filled by DNS (a headless Service); locally they
are filled through HAProxy's runtime API: a replica gets slot ``i`` (server ``replica<i>``)
with its address, and leaves it when it stops. (``discovery`` runs the DNS way instead.) The
ring position of a slot depends only on its number, so a replica added in slot 4 takes about a
quarter of the models and moves no others.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

Balance = Literal["hash", "roundrobin"]

# "show servers state": srv_op_state 2 is running; srv_admin_state is a bit set in which these
# take a server out of the ring (forced, inherited, DNS and hostname maintenance; draining).
# The template's "disabled" leaves a configuration bit (0x04) that a "state ready" keeps.
_RUNNING = 2
_OUT_OF_RING = 0x01 | 0x02 | 0x08 | 0x10 | 0x20 | 0x40
_PLACEHOLDER_PORT = 9  # the template's address for a slot no replica has had yet


@dataclass(frozen=True)
class SlotState:
    """One replica slot as HAProxy sees it."""

    slot: int
    address: str
    port: int
    up: bool  # in the ring: running and not in maintenance
    maintenance: bool


def find_haproxy() -> str:
    """The haproxy binary: on PATH, or where Debian puts it (/usr/sbin is not on every PATH)."""
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(p, os.X_OK)),
        None,
    )
    if found is None:
        raise FileNotFoundError("haproxy is not installed (Debian/Ubuntu: apt-get install haproxy)")
    return found


class Router:
    """An HAProxy process in front of the replicas, and its runtime API."""

    def __init__(
        self,
        template: Path,
        *,
        port: int,
        admin_port: int,
        log_path: Path,
        balance: Balance = "hash",
        balance_factor: int = 200,
        slots: int = 64,
        threads: int = 1,
        haproxy: str | None = None,
        discovery: str | None = None,
        nameserver: str | None = None,
    ) -> None:
        """``discovery``: a ``host:port`` that DNS (``nameserver``, an ``ip:port``) resolves to
        every replica, as in Kubernetes; None: slots are assigned with :meth:`assign`."""
        self.template = template
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.slots = slots
        self._admin = ("127.0.0.1", admin_port)
        self._log_path = log_path
        self._environment = {
            "MODELHOST_ROUTING_BIND": f"127.0.0.1:{port}",
            "MODELHOST_ROUTING_ADMIN_SOCKET": f"ipv4@127.0.0.1:{admin_port}",
            "MODELHOST_ROUTING_BALANCE": balance,
            "MODELHOST_ROUTING_BALANCE_FACTOR": str(balance_factor),
            "MODELHOST_ROUTING_SLOTS": str(slots),
            "MODELHOST_ROUTING_THREADS": str(threads),
        }
        if discovery is not None:
            self._environment["MODELHOST_ROUTING_REPLICAS"] = discovery
        if nameserver is not None:
            self._environment["MODELHOST_ROUTING_NAMESERVER"] = nameserver
        self._haproxy = haproxy or find_haproxy()
        self._log: IO[bytes] | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("MODELHOST_ROUTING")}
        environment = {**inherited, **self._environment}
        command = [self._haproxy, "-db", "-f", str(self.template)]
        check = subprocess.run(
            [*command, "-c"], env=environment, capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refused {self.template}:\n{check.stdout}{check.stderr}")
        self._log = open(self._log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command, env=environment, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited at start:\n{self.log()}")
            try:
                self.command("show info")
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def log(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""

    def command(self, line: str) -> str:
        """One runtime API command; returns HAProxy's answer."""
        with socket.create_connection(self._admin, timeout=5.0) as connection:
            connection.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := connection.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def assign(self, slot: int, port: int, host: str = "127.0.0.1") -> None:
        """Put a replica in ``slot``: it joins the ring at once (assign a replica that is ready),
        and the health checks watch it from then on."""
        self._check_slot(slot)
        self.command(f"set server replicas/replica{slot} addr {host} port {port}")
        self.command(f"set server replicas/replica{slot} state ready")

    def release(self, slot: int) -> None:
        """Take ``slot`` out of the ring at once (maintenance); requests in flight finish."""
        self._check_slot(slot)
        self.command(f"set server replicas/replica{slot} state maint")

    def states(self) -> dict[int, SlotState]:
        """Every slot that holds a replica (assigned, up or not)."""
        states: dict[int, SlotState] = {}
        for line in self.command("show servers state replicas").splitlines():
            fields = line.split()
            # be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state ... srv_port
            if len(fields) < 19 or not fields[3].startswith("replica"):
                continue
            slot = int(fields[3].removeprefix("replica"))
            port = int(fields[18])
            if port == _PLACEHOLDER_PORT or fields[4] == "-":
                continue  # a slot no replica has had yet, or that DNS has not filled
            maintenance = bool(int(fields[6]) & _OUT_OF_RING)
            up = int(fields[5]) == _RUNNING and not maintenance
            states[slot] = SlotState(slot, fields[4], port, up, maintenance)
        return states

    def wait_until(self, up: set[int], timeout: float = 30.0) -> None:
        """Wait until exactly the slots in ``up`` are in the ring."""
        deadline = time.monotonic() + timeout
        while True:
            current = {slot for slot, state in self.states().items() if state.up}
            if current == up:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"slots in the ring: {sorted(current)}, wanted {sorted(up)}")
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        """Soft stop: no new connections, requests in flight finish."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGUSR1)  # HAProxy's soft stop
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()

    def _check_slot(self, slot: int) -> None:
        if not 1 <= slot <= self.slots:
            raise ValueError(f"slot {slot} is outside 1-{self.slots}")
