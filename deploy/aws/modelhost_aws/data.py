"""PostgreSQL (RDS) for users, keys, the registry and usage; optional Redis for shared quotas."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from modelhost_aws.config import DeploymentConfig


def database(
    scope: Construct, config: DeploymentConfig, vpc: ec2.Vpc, clients: ec2.ISecurityGroup
) -> rds.DatabaseInstance:
    """Encrypted PostgreSQL in the isolated subnets; its credentials live in Secrets Manager
    (rotated monthly); Multi-AZ per context; deletion protection in prod."""
    security_group = ec2.SecurityGroup(scope, "DatabaseSecurityGroup", vpc=vpc)
    security_group.add_ingress_rule(clients, ec2.Port.tcp(5432), "modelhost pods (EKS nodes)")
    instance = rds.DatabaseInstance(
        scope,
        "Database",
        engine=rds.DatabaseInstanceEngine.postgres(version=rds.PostgresEngineVersion.VER_16),
        instance_type=ec2.InstanceType(config.db_instance_type),
        vpc=vpc,
        vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
        security_groups=[security_group],
        database_name="modelhost",
        credentials=rds.Credentials.from_generated_secret("modelhost"),
        multi_az=config.db_multi_az,
        storage_encrypted=True,
        allocated_storage=50,
        max_allocated_storage=500,
        backup_retention=Duration.days(14 if config.prod else 3),
        deletion_protection=config.prod,
        removal_policy=RemovalPolicy.SNAPSHOT if config.prod else RemovalPolicy.DESTROY,
        enable_performance_insights=True,
        cloudwatch_logs_exports=["postgresql"],
        iam_authentication=True,
    )
    instance.add_rotation_single_user(automatically_after=Duration.days(30))
    return instance


def redis(
    scope: Construct, config: DeploymentConfig, vpc: ec2.Vpc, clients: ec2.ISecurityGroup
) -> tuple[elasticache.CfnReplicationGroup, secretsmanager.Secret]:
    """Redis with encryption at rest and in transit and an AUTH token kept in Secrets Manager
    (MODELHOST_REDIS_URL=rediss://:TOKEN@ENDPOINT:6379/0)."""
    token = secretsmanager.Secret(
        scope,
        "RedisAuthToken",
        description="modelhost Redis AUTH token",
        generate_secret_string=secretsmanager.SecretStringGenerator(
            exclude_punctuation=True, password_length=48
        ),
    )
    security_group = ec2.SecurityGroup(scope, "RedisSecurityGroup", vpc=vpc)
    security_group.add_ingress_rule(clients, ec2.Port.tcp(6379), "modelhost pods (EKS nodes)")
    subnets = elasticache.CfnSubnetGroup(
        scope,
        "RedisSubnets",
        description="modelhost quota counters",
        subnet_ids=vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids,
    )
    group = elasticache.CfnReplicationGroup(
        scope,
        "Redis",
        replication_group_description="modelhost quota counters shared by all replicas",
        engine="redis",
        cache_node_type="cache.t4g.small",
        num_cache_clusters=2 if config.prod else 1,
        automatic_failover_enabled=config.prod,
        multi_az_enabled=config.prod,
        at_rest_encryption_enabled=True,
        transit_encryption_enabled=True,
        cache_subnet_group_name=subnets.ref,
        security_group_ids=[security_group.security_group_id],
        auth_token=token.secret_value.unsafe_unwrap(),  # a dynamic reference, not the value
    )
    group.apply_removal_policy(RemovalPolicy.DESTROY)
    return group, token
