"""A local cluster: N ``modelhost serve`` replicas sharing one database and one model
repository, behind the routing tier (HAProxy), on loopback.

What ``deploy/local/cluster`` runs, and what the cluster tests start. Replicas start at the
same moment (migrations and registry sync are safe under that race); each joins the ring once
it is ready. Scaling adds a replica in the next slot; removing one drains it (SIGTERM: the
router's health checks take it out of the ring) and then frees its slot.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass, field
from pathlib import Path

from modelhost.cluster.replica import Replica, free_port
from modelhost.cluster.router import Balance, Router


@dataclass
class ClusterSpec:
    """What to start."""

    model_repository: str
    template: Path  # deploy/k8s/components/routing/haproxy.cfg
    replicas: int = 3
    port: int = 8080  # the front; replica i listens on port + i. 0: free ports for all
    memory_budget: str | None = None
    balance: Balance = "hash"
    balance_factor: int = 200
    database_url: str | None = None  # None: MODELHOST_DATABASE_URL, else the SQLite default
    state_dir: Path = Path(".modelhost-cluster")
    environment: dict[str, str] = field(default_factory=dict)  # more MODELHOST_* settings
    ready_timeout: float = 120.0
    shutdown_timeout: float = 40.0


class LocalCluster:
    """Replicas and the router; :meth:`stop` ends them all."""

    def __init__(self, spec: ClusterSpec) -> None:
        if spec.replicas < 1:
            raise ValueError("a cluster needs at least one replica")
        if 0 < spec.balance_factor <= 100:
            raise ValueError("the balance factor is a % above 100 (or 0 for no bound)")
        self.spec = spec
        spec.state_dir.mkdir(parents=True, exist_ok=True)
        front = spec.port or free_port()
        self.router = Router(
            spec.template,
            port=front,
            admin_port=free_port(),
            log_path=spec.state_dir / "router.log",
            balance=spec.balance,
            balance_factor=spec.balance_factor,
        )
        self.replicas: dict[int, Replica] = {}

    @property
    def front_url(self) -> str:
        return self.router.url

    def start(self) -> None:
        try:
            self.router.start()
            started = [self._new_replica() for _ in range(self.spec.replicas)]
            for replica in started:
                replica.start()  # all at once, on purpose
            for replica in started:
                replica.wait_ready(self.spec.ready_timeout)
                self.router.assign(replica.index, replica.port)
            self.router.wait_until(set(self.replicas))
        except BaseException:
            self.stop()
            raise

    def add_replica(self) -> Replica:
        """Start one more replica in the next free slot; it joins the ring once ready."""
        replica = self._new_replica()
        replica.start()
        replica.wait_ready(self.spec.ready_timeout)
        self.router.assign(replica.index, replica.port)
        self.router.wait_until(self._live_slots())
        return replica

    def remove_replica(self, index: int) -> None:
        """Stop a replica the way Kubernetes does: SIGTERM. It turns unready at once and answers
        new requests 503 (the router replays them on the next replica) while those in flight
        finish; the router's health checks take it out of the ring. Then its slot is freed."""
        replica = self.replicas.pop(index)
        replica.terminate()
        replica.wait(self.spec.shutdown_timeout)
        replica.close()
        self.router.release(index)

    def kill(self, index: int) -> None:
        """SIGKILL a replica; the router finds out by itself (refused connections, checks)."""
        self.replicas[index].kill()

    def restart(self, index: int) -> None:
        """Start a killed replica again: same slot, port and usage journal."""
        replica = self.replicas[index]
        replica.start()
        replica.wait_ready(self.spec.ready_timeout)

    def stop(self) -> None:
        """Stop taking requests, then drain every replica at once."""
        self.router.stop()
        replicas = list(self.replicas.values())
        for replica in replicas:
            replica.terminate()
        timeout = self.spec.shutdown_timeout
        with concurrent.futures.ThreadPoolExecutor(max(1, len(replicas))) as pool:
            list(pool.map(lambda replica: replica.wait(timeout), replicas))
        for replica in replicas:
            replica.close()

    def _new_replica(self) -> Replica:
        index = next(i for i in range(1, self.router.slots + 1) if i not in self.replicas)
        port = self.spec.port + index if self.spec.port else free_port()
        replica = Replica(index, port, self.spec.state_dir, self._environment())
        self.replicas[index] = replica
        return replica

    def _live_slots(self) -> set[int]:
        return {index for index, replica in self.replicas.items() if replica.alive}

    def _environment(self) -> dict[str, str]:
        environment = {"MODELHOST_MODEL_REPOSITORY": self.spec.model_repository}
        if self.spec.memory_budget is not None:
            environment["MODELHOST_MEMORY_BUDGET"] = self.spec.memory_budget
        if self.spec.database_url is not None:
            environment["MODELHOST_DATABASE_URL"] = self.spec.database_url
        return {**environment, **self.spec.environment}
