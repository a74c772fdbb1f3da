"""Settings of a modelhost process, read from ``MODELHOST_*`` variables and overridden by the CLI.

Nothing is built at import time: the CLI (or a test) builds a :class:`Settings` and hands it to
``create_app``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from modelhost import container
from modelhost.units import parse_bytes

ByteCount = Annotated[int, BeforeValidator(parse_bytes)]


def _cores(value: Any) -> Any:
    return container.available_cores() if value == "auto" else value


def _model_names(value: Any) -> Any:
    # MODELHOST_MODELS=resnet,bert (a list is accepted from code and tests as it is).
    if isinstance(value, str):
        names = [name.strip() for name in value.split(",") if name.strip()]
        return frozenset(names) or None
    return value


class Settings(BaseSettings):
    """Every option of ``modelhost serve``; each is also ``MODELHOST_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="MODELHOST_", extra="ignore")

    model_repository: str = Field(
        default="models",
        description="Where versions live, as <name>/<version>/: a folder or s3://bucket/prefix.",
    )
    baked_models: Path | None = Field(
        default=None,
        description="A read-only folder of <name>/<version>/ served before the repository "
        "(versions baked into the image: a new pod answers without a download).",
    )
    models: Annotated[frozenset[str] | None, NoDecode, BeforeValidator(_model_names)] = Field(
        default=None,
        description="A per-model deployment: serve only these models (MODELHOST_MODELS=a,b); "
        "unset: every model in the repository (a shared pool).",
    )
    s3_endpoint: str | None = Field(
        default=None, description="S3-compatible endpoint URL; unset: AWS (or AWS_ENDPOINT_URL)."
    )
    s3_region: str | None = Field(default=None, description="unset: AWS_REGION, else us-east-1.")
    s3_part_size: ByteCount = Field(
        default=parse_bytes("16MiB"),
        gt=0,
        description="A file bigger than this is fetched from S3 as ranged GETs of this size.",
    )
    s3_concurrency: int = Field(
        default=16, ge=1, description="Ranged GETs of one file in flight at once."
    )
    cache_dir: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "modelhost",
        description="Verified local copies of files fetched from a remote model repository.",
    )
    cache_size: ByteCount = Field(
        default=parse_bytes("50GiB"), gt=0, description="Bytes the artifact cache may hold."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    grpc_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Also serve the V2 protocol over gRPC (and grpc.health.v1) on this port, "
        "same host; unset: no gRPC.",
    )
    memory_budget: Annotated[int, BeforeValidator(container.memory_budget)] = Field(
        default=parse_bytes("8GiB"),
        description="Bytes resident models may hold together: a size, 'auto' (the container's "
        "memory limit less headroom for the process) or a percentage of that limit.",
    )
    eviction_policy: Literal["lru", "cost-aware"] = Field(
        default="lru",
        description="Which idle models go first when a load needs memory: 'lru' (least "
        "recently used) or 'cost-aware' (cheapest to reload per byte, weighed by recent "
        "requests: GreedyDual-Size-Frequency).",
    )
    warm_start_window_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="At start, preload (in the background, within the budget) the models "
        "served most in this many seconds before, from the usage records; 0: don't.",
    )
    warm_start_ready_wait_seconds: float = Field(
        default=0.0,
        ge=0,
        description="How long readiness may wait for that preload (it goes on after).",
    )
    idle_unload_seconds: float | None = Field(
        default=None, gt=0, description="Unload a model nobody used for this long; unset: never."
    )
    max_request_bytes: ByteCount = Field(default=parse_bytes("64MiB"), gt=0)
    # -- connections (api/connections.py): no client may hoard them
    max_connections: int = Field(
        default=10_000,
        ge=1,
        description="Open connections at most (fewer if the descriptor limit is lower); past "
        "it the oldest idle connections are closed to admit new ones.",
    )
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="A request's headers must arrive within this."
    )
    body_timeout_seconds: float = Field(
        default=30.0, gt=0, description="A request body may pause this long between reads."
    )
    keep_alive_seconds: int = Field(
        default=75,
        ge=1,
        description="An idle keep-alive connection closes after this; keep it longer than the "
        "load balancer's idle timeout (ALB: 60 s), or it gets 502s on reused connections.",
    )
    request_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Deadline of a request that sets none of its own."
    )
    max_inflight_per_user: int | None = Field(
        default=None, ge=1, description="Requests one API key may have in flight; unset: no limit."
    )
    default_requests_per_minute: int | None = Field(
        default=None, ge=1, description="Requests an API key may make a minute; unset: no limit."
    )
    load_retry_initial_seconds: float = Field(default=1.0, gt=0)
    load_retry_max_seconds: float = Field(default=60.0, gt=0)
    inline_predict_ms: float = Field(
        default=0.5,
        ge=0,
        description="A model whose calls take less CPU than this runs on the event loop (the "
        "thread hop would cost more); 0: always in worker threads.",
    )
    cores: Annotated[int, BeforeValidator(_cores)] = Field(
        default_factory=container.available_cores,
        ge=1,
        description="Cores model threads may share; default ('auto'): the CPUs this process "
        "may run on, capped by the container's CPU quota.",
    )
    log_level: str = "info"
    log_format: Literal["json", "text"] = "json"
    metrics_public: bool = Field(
        default=False, description="Serve /metrics without an API key (in-cluster scrapes)."
    )
    cloudwatch_emf: bool = Field(
        default=False, description="Also write CloudWatch Embedded Metric Format lines."
    )
    emf_interval_seconds: float = Field(default=60.0, gt=0)
    shutdown_grace_seconds: float = Field(
        default=30.0, ge=0, description="How long requests in flight may finish after SIGTERM."
    )

    # -- the database: users, API keys, the model registry, usage records
    database_url: str = Field(
        default="sqlite:///./modelhost.db", description="sqlite:///FILE or postgresql://..."
    )
    db_auto_migrate: bool = Field(default=True, description="Run migrations when serve starts.")
    db_pool_size: int = Field(default=5, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0)
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    db_command_timeout_seconds: float = Field(default=10.0, gt=0)
    registry_refresh_seconds: float = Field(
        default=5.0, gt=0, description="How often a replica re-reads the registry."
    )

    # -- access
    auth: Literal["enabled", "disabled"] = "enabled"
    auth_cache_seconds: float = Field(
        default=5.0, ge=0, description="How long a key lookup is reused (revocations elsewhere)."
    )
    redis_url: str | None = Field(default=None, description="Share quota counters across replicas.")

    # -- usage records
    usage_records: bool = Field(
        default=True, description="Write a usage record per inference request."
    )
    usage_journal: Path = Field(
        default=Path("modelhost-usage.journal"),
        description="Where usage records wait while the database is unreachable.",
    )
    usage_flush_seconds: float = Field(
        default=0.5, gt=0, description="The longest a usage record waits for its insert."
    )
    usage_batch_size: int = Field(
        default=2000,
        ge=1,
        description="Records inserted in one transaction at most; a full batch is inserted "
        "at once. A SQLite commit costs ~3 ms of CPU (its WAL write and checkpoints): 23 us a "
        "record in batches of 500, ~16 in batches of 2000.",
    )
