"""ModelhostStack: everything modelhost needs on AWS, wired together."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

from modelhost_aws import cluster as compute
from modelhost_aws import data, monitoring
from modelhost_aws.config import DeploymentConfig
from modelhost_aws.findings import acknowledge_findings


class ModelhostStack(Stack):
    """VPC (3 AZs), EKS with a high-memory node group, the model bucket, RDS PostgreSQL,
    optional Redis, the modelhost pods' IAM role (Pod Identity), logs, alarms, a dashboard."""

    def __init__(
        self, scope: Construct, construct_id: str, config: DeploymentConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.vpc = compute.network(self, config)
        self.bucket = compute.model_bucket(self, config)
        self.repository = compute.image_repository(self, config)
        self.cluster = compute.cluster(self, config, self.vpc)
        nodes: ec2.ISecurityGroup = self.cluster.cluster_security_group
        self.database = data.database(self, config, self.vpc, nodes)
        self.redis, self.redis_token = (
            data.redis(self, config, self.vpc, nodes) if config.redis else (None, None)
        )

        # The modelhost service account reads the bucket (and nothing else) through Pod
        # Identity: no OIDC provider, no annotation on the service account, no kubectl Lambda.
        self.pod_role = compute.pod_role(self, "ModelhostPodRole")
        self.pod_role.add_to_policy(
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn])
        )
        self.pod_role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[self.bucket.arn_for_objects("*")]
            )
        )
        compute.associate(
            self, "ModelhostIdentity", self.cluster, config.namespace, config.service_account,
            self.pod_role,
        )  # fmt: skip

        self.logs = monitoring.log_group(self, config)
        self.topic = monitoring.alarm_topic(self, config)
        self.alarms = monitoring.alarms(self, config, self.topic, self.cluster.cluster_name)
        monitoring.dashboard(self, self.alarms)

        outputs = {
            "ModelBucketName": self.bucket.bucket_name,
            "ImageRepositoryUri": self.repository.repository_uri,
            "ClusterName": self.cluster.cluster_name,
            "DatabaseEndpoint": self.database.db_instance_endpoint_address,
            "DatabaseSecretArn": self.database.secret.secret_arn if self.database.secret else "",
            "AlarmTopicArn": self.topic.topic_arn,
            "LogGroupName": self.logs.log_group_name,
        }
        if self.redis is not None and self.redis_token is not None:
            outputs["RedisEndpoint"] = self.redis.attr_primary_end_point_address
            outputs["RedisAuthTokenSecretArn"] = self.redis_token.secret_arn
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
        acknowledge_findings(self)
