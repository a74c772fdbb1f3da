"""The deployment's knobs, read from CDK context (cdk.json, or ``cdk deploy -c key=value``)."""

from __future__ import annotations

from dataclasses import dataclass

from constructs import Node


@dataclass(frozen=True)
class DeploymentConfig:
    """What differs between deployments; everything else is the stack's own choice."""

    environment: str  # "dev" or "prod": prod keeps data (deletion protection, retained bucket)
    node_instance_type: str  # a high-memory type: models are held in memory
    node_min: int
    node_max: int
    node_desired: int
    node_disk_gib: int
    db_instance_type: str
    db_multi_az: bool
    redis: bool  # ElastiCache Redis for quotas shared by all replicas
    alarm_email: str | None
    latency_p99_ms: int
    namespace: str  # the Kubernetes namespace and service account deploy/k8s uses
    service_account: str

    @property
    def prod(self) -> bool:
        return self.environment == "prod"

    @classmethod
    def from_context(cls, node: Node) -> DeploymentConfig:
        def get(key: str, default: object) -> object:
            value = node.try_get_context(key)
            return default if value is None else value

        def flag(key: str, default: bool) -> bool:
            value = get(key, default)
            return value if isinstance(value, bool) else str(value).lower() == "true"

        environment = str(get("environment", "dev"))
        if environment not in ("dev", "prod"):
            raise ValueError(f"context environment must be dev or prod, not {environment!r}")
        email = get("alarmEmail", "")
        return cls(
            environment=environment,
            node_instance_type=str(get("nodeInstanceType", "r6i.2xlarge")),
            node_min=int(str(get("nodeMin", 2))),
            node_max=int(str(get("nodeMax", 10))),
            node_desired=int(str(get("nodeDesired", 3))),
            node_disk_gib=int(str(get("nodeDiskGiB", 200))),
            db_instance_type=str(get("dbInstanceType", "t4g.medium")),
            db_multi_az=flag("dbMultiAz", environment == "prod"),
            redis=flag("redis", False),
            alarm_email=str(email) or None,
            latency_p99_ms=int(str(get("latencyP99Ms", 2000))),
            namespace=str(get("namespace", "modelhost")),
            service_account=str(get("serviceAccount", "modelhost")),
        )
