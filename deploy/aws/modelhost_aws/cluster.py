"""The VPC, the model bucket and image repository, and the EKS cluster with its node group."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from modelhost_aws.config import DeploymentConfig

KUBERNETES_VERSION = eks.KubernetesVersion.V1_33


def network(scope: Construct, config: DeploymentConfig) -> ec2.Vpc:
    """Three AZs: public subnets for the ALB, private ones for nodes, isolated ones for data."""
    vpc = ec2.Vpc(
        scope,
        "Vpc",
        max_azs=3,
        nat_gateways=3 if config.prod else 1,
        subnet_configuration=[
            ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC),
            ec2.SubnetConfiguration(
                name="nodes", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=19
            ),
            ec2.SubnetConfiguration(name="data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
        ],
        # S3 traffic (model downloads) stays on the AWS network and off the NAT bill.
        gateway_endpoints={
            "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)
        },
    )
    vpc.add_flow_log(
        "FlowLogs",
        destination=ec2.FlowLogDestination.to_cloud_watch_logs(
            logs.LogGroup(scope, "FlowLogGroup", retention=logs.RetentionDays.ONE_MONTH)
        ),
    )
    return vpc


def model_bucket(scope: Construct, config: DeploymentConfig) -> s3.Bucket:
    """Private, encrypted, versioned, TLS only: where `modelhost models push` puts versions."""
    access_logs = s3.Bucket(
        scope,
        "AccessLogs",
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
        lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))],
        removal_policy=RemovalPolicy.RETAIN if config.prod else RemovalPolicy.DESTROY,
        auto_delete_objects=False,
    )
    return s3.Bucket(
        scope,
        "Models",
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        encryption=s3.BucketEncryption.KMS_MANAGED,
        enforce_ssl=True,
        versioned=True,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix="models/",
        # Old versions of overwritten objects are kept a while, then expire.
        lifecycle_rules=[s3.LifecycleRule(noncurrent_version_expiration=Duration.days(30))],
        removal_policy=RemovalPolicy.RETAIN if config.prod else RemovalPolicy.DESTROY,
    )


def image_repository(scope: Construct, config: DeploymentConfig) -> ecr.Repository:
    return ecr.Repository(
        scope,
        "Images",
        repository_name="modelhost",
        image_scan_on_push=True,
        image_tag_mutability=ecr.TagMutability.IMMUTABLE,
        encryption=ecr.RepositoryEncryption.KMS,
        lifecycle_rules=[ecr.LifecycleRule(max_image_count=50)],
        removal_policy=RemovalPolicy.RETAIN if config.prod else RemovalPolicy.DESTROY,
    )


def cluster(scope: Construct, config: DeploymentConfig, vpc: ec2.Vpc) -> eks.Cluster:
    """EKS with every control-plane log, encrypted secrets, and a managed node group of
    high-memory instances (type and size from context) in the private subnets."""
    secrets_key = kms.Key(scope, "ClusterSecretsKey", enable_key_rotation=True)
    eks_cluster = eks.Cluster(
        scope,
        "Cluster",
        version=KUBERNETES_VERSION,
        vpc=vpc,
        vpc_subnets=[ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)],
        default_capacity_type=eks.DefaultCapacityType.NODEGROUP,
        default_capacity=0,
        secrets_encryption_key=secrets_key,
        cluster_logging=[
            eks.ClusterLoggingTypes.API,
            eks.ClusterLoggingTypes.AUDIT,
            eks.ClusterLoggingTypes.AUTHENTICATOR,
            eks.ClusterLoggingTypes.CONTROLLER_MANAGER,
            eks.ClusterLoggingTypes.SCHEDULER,
        ],
    )
    eks_cluster.add_nodegroup_capacity(
        "Models",
        instance_types=[ec2.InstanceType(config.node_instance_type)],
        min_size=config.node_min,
        max_size=config.node_max,
        desired_size=config.node_desired,
        disk_size=config.node_disk_gib,
        subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
        labels={"modelhost.dev/pool": "models"},
    )
    # Pod Identity for the pods' AWS credentials; EBS volumes for the artifact cache (the
    # aws overlay's gp3 StorageClass); Container Insights for container memory against limits.
    eks.Addon(scope, "PodIdentityAgent", cluster=eks_cluster, addon_name="eks-pod-identity-agent")
    ebs_role = pod_role(scope, "EbsCsiRole")
    ebs_role.add_managed_policy(
        iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AmazonEBSCSIDriverPolicy")
    )
    associate(
        scope, "EbsCsiIdentity", eks_cluster, "kube-system", "ebs-csi-controller-sa", ebs_role
    )
    eks.Addon(scope, "EbsCsiDriver", cluster=eks_cluster, addon_name="aws-ebs-csi-driver")
    insights_role = pod_role(scope, "CloudWatchAgentRole")
    insights_role.add_managed_policy(
        iam.ManagedPolicy.from_aws_managed_policy_name("CloudWatchAgentServerPolicy")
    )
    associate(
        scope, "CloudWatchAgentIdentity", eks_cluster, "amazon-cloudwatch", "cloudwatch-agent",
        insights_role,
    )  # fmt: skip
    eks.Addon(
        scope, "CloudWatchObservability", cluster=eks_cluster,
        addon_name="amazon-cloudwatch-observability",
    )  # fmt: skip
    return eks_cluster


def pod_role(scope: Construct, name: str) -> iam.Role:
    """A role that pods assume through EKS Pod Identity (no OIDC provider, no kubectl)."""
    return iam.Role(
        scope,
        name,
        assumed_by=iam.SessionTagsPrincipal(iam.ServicePrincipal("pods.eks.amazonaws.com")),
    )


def associate(
    scope: Construct,
    name: str,
    eks_cluster: eks.Cluster,
    namespace: str,
    service_account: str,
    role: iam.IRole,
) -> eks.CfnPodIdentityAssociation:
    return eks.CfnPodIdentityAssociation(
        scope,
        name,
        cluster_name=eks_cluster.cluster_name,
        namespace=namespace,
        service_account=service_account,
        role_arn=role.role_arn,
    )
