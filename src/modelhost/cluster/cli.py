"""The local cluster's command line: start, print where everything listens, stop on a signal."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from modelhost.cluster.local import ClusterSpec, LocalCluster
from modelhost.cluster.router import Balance

app = typer.Typer(add_completion=False)


@app.command()
def cluster(
    model_repository: Annotated[
        str, typer.Option(help="Folder or s3://bucket/prefix every replica serves")
    ],
    haproxy_config: Annotated[
        Path,
        typer.Option(help="The routing template: deploy/k8s/components/routing/haproxy.cfg"),
    ],
    replicas: Annotated[int, typer.Option(min=1, max=64, help="How many replicas")] = 3,
    memory_budget: Annotated[
        str | None, typer.Option(help="Each replica's memory budget, e.g. 2GiB")
    ] = None,
    port: Annotated[
        int, typer.Option(help="The front's port; replica i listens on port + i (0: any free)")
    ] = 8080,
    balance: Annotated[
        Balance, typer.Option(help="hash: by model name, bounded loads; roundrobin: to compare")
    ] = "hash",
    balance_factor: Annotated[
        int,
        typer.Option(
            min=0,
            help="No replica gets more than this % of the average requests in flight (0: off)",
        ),
    ] = 200,
    database_url: Annotated[
        str | None,
        typer.Option(help="Shared by all replicas [MODELHOST_DATABASE_URL; default SQLite]"),
    ] = None,
    state_dir: Annotated[Path, typer.Option(help="Logs and each replica's usage journal")] = Path(
        ".modelhost-cluster"
    ),
) -> None:
    """Start N modelhost replicas sharing one database and model repository, behind HAProxy.

    Prints one line per replica, then the front's address; Ctrl-C or SIGTERM stops everything.
    """
    spec = ClusterSpec(
        model_repository=model_repository,
        template=haproxy_config,
        replicas=replicas,
        port=port,
        memory_budget=memory_budget,
        balance=balance,
        balance_factor=balance_factor,
        database_url=database_url,
        state_dir=state_dir,
    )
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    local = LocalCluster(spec)
    try:
        local.start()
    except (RuntimeError, TimeoutError, OSError) as exc:
        typer.echo(f"error: the cluster did not start: {exc}", err=True)
        raise typer.Exit(1) from None
    for index, replica in sorted(local.replicas.items()):
        typer.echo(f"replica {index} {replica.url}")
    typer.echo(f"front {local.front_url}", nl=True)
    reported: set[int] = set()
    try:
        while not stopping.wait(1.0):
            for index, replica in local.replicas.items():
                if not replica.alive and index not in reported:
                    reported.add(index)
                    typer.echo(f"replica {index} exited; its log: {replica.log_path}", err=True)
    finally:
        local.stop()
