"""The CDK app's stack, synthesized offline and asserted with aws_cdk.assertions.

Run by tests/deploy/test_aws.py in .venv-deploy (``python -m pytest deploy/aws/tests``).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template

from app import build_app

HERE = Path(__file__).parents[1]
# What the cdk command line hands the app: cdk.json's context and the pinned lookups of
# cdk.context.json (the three availability zones), so nothing is looked up in an AWS account.
CONTEXT: dict[str, Any] = {
    **json.loads((HERE / "cdk.json").read_text())["context"],
    **json.loads((HERE / "cdk.context.json").read_text()),
}


@cache
def template(**overrides: Any) -> Template:
    """The stack's template with some context changed (AwsSolutions checks run in synth: a
    finding nobody acknowledged fails it)."""
    app = App(context={**CONTEXT, **overrides})
    stack = build_app(app)
    app.synth()
    return Template.from_stack(stack)


def resources(found: Template, kind: str) -> dict[str, Any]:
    values: dict[str, Any] = found.find_resources(kind)
    return values


def test_vpc_spans_three_zones() -> None:
    subnets = resources(template(), "AWS::EC2::Subnet")
    zones = {s["Properties"]["AvailabilityZone"] for s in subnets.values()}
    assert zones == {"us-east-1a", "us-east-1b", "us-east-1c"}  # pinned in cdk.context.json
    assert len(subnets) == 9  # public, nodes and data in each zone
    template().resource_count_is("AWS::EC2::FlowLog", 1)


def test_eks_cluster_and_high_memory_node_group_from_context() -> None:
    found = template(nodeInstanceType="r6i.4xlarge", nodeMin=3, nodeMax=12)
    found.has_resource_properties(
        "AWS::EKS::Cluster",
        {
            "Version": "1.33",
            "Logging": {"ClusterLogging": {"EnabledTypes": Match.array_with([{"Type": "audit"}])}},
            "EncryptionConfig": Match.any_value(),
        },
    )
    found.has_resource_properties(
        "AWS::EKS::Nodegroup",
        {
            "InstanceTypes": ["r6i.4xlarge"],
            "ScalingConfig": {"MinSize": 3, "MaxSize": 12, "DesiredSize": 3},
        },
    )
    addons = {a["Properties"]["AddonName"] for a in resources(found, "AWS::EKS::Addon").values()}
    assert {"eks-pod-identity-agent", "aws-ebs-csi-driver"} <= addons
    assert "amazon-cloudwatch-observability" in addons


def test_model_bucket_is_private_encrypted_versioned_tls_only() -> None:
    found = template()
    found.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "VersioningConfiguration": {"Status": "Enabled"},
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}
                ]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
        },
    )
    found.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )


def test_postgresql_encrypted_with_secret_multi_az_switch_and_prod_protection() -> None:
    dev = template()
    dev.has_resource_properties(
        "AWS::RDS::DBInstance",
        {"Engine": "postgres", "StorageEncrypted": True, "MultiAZ": False,
         "DeletionProtection": False},
    )  # fmt: skip
    dev.resource_count_is("AWS::SecretsManager::Secret", 1)
    dev.resource_count_is("AWS::SecretsManager::RotationSchedule", 1)
    prod = template(environment="prod")
    prod.has_resource_properties(
        "AWS::RDS::DBInstance", {"MultiAZ": True, "DeletionProtection": True}
    )
    template(dbMultiAz=True).has_resource_properties("AWS::RDS::DBInstance", {"MultiAZ": True})


def test_pod_identity_role_reads_the_bucket_and_nothing_more() -> None:
    found = template()
    found.has_resource_properties(
        "AWS::EKS::PodIdentityAssociation",
        {"Namespace": "modelhost", "ServiceAccount": "modelhost"},
    )
    roles = resources(found, "AWS::IAM::Role")
    association = next(
        a for a in resources(found, "AWS::EKS::PodIdentityAssociation").values()
        if a["Properties"]["ServiceAccount"] == "modelhost"
    )  # fmt: skip
    role_id = association["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    trust = roles[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert set(trust["Action"]) == {"sts:AssumeRole", "sts:TagSession"}
    policies = [
        p for p in resources(found, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]  # fmt: skip
    actions = {
        action
        for policy in policies
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str)
                       else statement["Action"])
    }  # fmt: skip
    assert actions == {"s3:GetObject", "s3:ListBucket"}


def test_redis_only_when_asked_and_encrypted() -> None:
    template().resource_count_is("AWS::ElastiCache::ReplicationGroup", 0)
    with_redis = template(redis=True)
    with_redis.has_resource_properties(
        "AWS::ElastiCache::ReplicationGroup",
        {"AtRestEncryptionEnabled": True, "TransitEncryptionEnabled": True,
         "AuthToken": Match.any_value()},
    )  # fmt: skip


def test_logs_alarms_dashboard_and_topic() -> None:
    found = template()
    found.has_resource_properties("AWS::Logs::LogGroup", {"LogGroupName": "/modelhost/dev"})
    found.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    found.resource_count_is("AWS::CloudWatch::Dashboard", 1)
    alarms = resources(found, "AWS::CloudWatch::Alarm")
    by_metric: dict[str, dict[str, Any]] = {}
    for alarm in alarms.values():
        properties = alarm["Properties"]
        assert properties["AlarmActions"], "every alarm notifies the topic"
        name = properties.get("MetricName") or "expression"
        by_metric[name] = properties
    assert by_metric["MemoryUtilization"]["Namespace"] == "modelhost"  # EMF: resident vs budget
    assert by_metric["pod_memory_utilization_over_pod_limit"]["Namespace"] == "ContainerInsights"
    assert by_metric["Latency"]["ExtendedStatistic"] == "p99"
    assert by_metric["Latency"]["Threshold"] == CONTEXT["latencyP99Ms"]
    assert by_metric["ModelLoadFailures"]["Namespace"] == "modelhost"
    errors = by_metric["expression"]["Metrics"]
    assert {m["Id"] for m in errors} >= {"errors", "requests"}
    names = {m["MetricStat"]["Metric"]["MetricName"] for m in errors if "MetricStat" in m}
    assert names == {"Errors", "Requests"}


def test_outputs_feed_the_kubernetes_overlay() -> None:
    outputs = template().find_outputs("*")
    assert {"ModelBucketName", "ImageRepositoryUri", "ClusterName", "DatabaseEndpoint",
            "DatabaseSecretArn"} <= outputs.keys()  # fmt: skip


def test_cdk_nag_fails_the_synth_on_a_finding_nobody_acknowledged() -> None:
    app = App(context=CONTEXT)
    stack = build_app(app)
    s3.Bucket(stack, "Careless")  # no TLS-only policy, no access logs
    with pytest.raises(RuntimeError, match=r"AwsSolutions-S10"):
        app.synth()
