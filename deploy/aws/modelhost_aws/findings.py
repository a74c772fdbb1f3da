"""cdk-nag (AwsSolutions) findings this stack keeps on purpose, each with its reason.

Everything else the pack checks passes. The findings are acknowledged on the construct they
concern, never for the whole app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct

if TYPE_CHECKING:
    from modelhost_aws.stack import ModelhostStack


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))


def acknowledge_findings(stack: ModelhostStack) -> None:
    config = stack.config
    acknowledge(
        stack.cluster, "AwsSolutions-EKS1",
        "Operators run kubectl from outside the VPC (README: Deploy); the endpoint needs IAM "
        "credentials and an access entry. Restrict it with endpoint_access in a fork if you "
        "reach the cluster through a VPN.",
    )  # fmt: skip
    acknowledge(
        stack.bucket.node.scope.node.find_child("AccessLogs"), "AwsSolutions-S1",  # type: ignore[union-attr]
        "This is the access-log bucket of the model bucket; logging it to itself would loop.",
    )  # fmt: skip
    for managed in ("service-role/AmazonEBSCSIDriverPolicy", "CloudWatchAgentServerPolicy"):
        acknowledge(
            stack, f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{managed}]",
            "The AWS-managed policy the add-on's documentation names; AWS keeps it in step "
            "with the add-on's API calls.",
        )  # fmt: skip
    for managed in (
        "AmazonEKSClusterPolicy",
        "AmazonEKSWorkerNodePolicy",
        "AmazonEKS_CNI_Policy",
        "AmazonEC2ContainerRegistryReadOnly",
    ):
        acknowledge(
            stack, f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{managed}]",
            "The AWS-managed policies EKS requires for its control plane and managed nodes "
            "(attached by aws_eks_v2); AWS updates them with EKS.",
        )  # fmt: skip
    bucket_id = stack.get_logical_id(stack.bucket.node.default_child)  # type: ignore[arg-type]
    acknowledge(
        stack, f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/*]",
        "s3:GetObject on every object of the model bucket is the point: versions are pushed "
        "under <name>/<version>/ and any of them may be loaded. No other action is granted.",
    )  # fmt: skip
    if not config.db_multi_az:
        acknowledge(
            stack.database, "AwsSolutions-RDS3",
            "Multi-AZ is a context switch (dbMultiAz), on by default in prod only; a dev "
            "database does not need a standby.",
        )  # fmt: skip
    if not config.prod:
        acknowledge(
            stack.database, "AwsSolutions-RDS10",
            "Deletion protection is on in prod; a dev stack is meant to be torn down.",
        )  # fmt: skip
    acknowledge(
        stack.database, "AwsSolutions-RDS11",
        "The default PostgreSQL port: only the EKS nodes' security group may reach it, and "
        "a non-standard port hides nothing from a client inside the VPC.",
    )  # fmt: skip
    if stack.redis is not None and stack.redis_token is not None:
        acknowledge(
            stack.redis_token, "AwsSolutions-SMG4",
            "ElastiCache cannot rotate an AUTH token stored here by itself; rotate it with "
            "modify-replication-group --auth-token-update-strategy ROTATE, then update the "
            "secret (README: Deploy). The database secret does rotate automatically.",
        )  # fmt: skip
        acknowledge(
            stack.redis, "AwsSolutions-AEC5",
            "The default Redis port: only the EKS nodes' security group may reach it, with TLS "
            "and an AUTH token; a non-standard port hides nothing inside the VPC.",
        )  # fmt: skip
        if not config.prod:
            acknowledge(
                stack.redis, "AwsSolutions-AEC4",
                "One node in dev: the quota counters are soft state (modelhost falls back to "
                "local counting while Redis is away). prod runs a replica in another AZ.",
            )  # fmt: skip
