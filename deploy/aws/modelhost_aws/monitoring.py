"""Logs, alarms and a dashboard from the metrics modelhost already writes.

modelhost writes CloudWatch Embedded Metric Format lines (MODELHOST_CLOUDWATCH_EMF=true, set by
the aws overlay) in the ``modelhost`` namespace: Requests, Errors, Latency (per model and in
all), and per process MemoryUtilization (resident model bytes against the budget) and
ModelLoadFailures. Container Insights (an EKS add-on) gives container memory against its limit.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from modelhost_aws.config import DeploymentConfig

NAMESPACE = "modelhost"
MINUTE = Duration.minutes(1)


def emf(name: str, statistic: str, period: Duration = MINUTE) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=NAMESPACE, metric_name=name, statistic=statistic, period=period
    )


def log_group(scope: Construct, config: DeploymentConfig) -> logs.LogGroup:
    """Where the pods' JSON lines (and so the EMF metrics) go, via Container Insights."""
    return logs.LogGroup(
        scope,
        "Logs",
        log_group_name=f"/modelhost/{config.environment}",
        retention=logs.RetentionDays.THREE_MONTHS if config.prod else logs.RetentionDays.ONE_MONTH,
        removal_policy=RemovalPolicy.RETAIN if config.prod else RemovalPolicy.DESTROY,
    )


def alarm_topic(scope: Construct, config: DeploymentConfig) -> sns.Topic:
    key = kms.Key(scope, "AlarmTopicKey", enable_key_rotation=True)
    # CloudWatch publishes to the encrypted topic: it needs to use the key.
    key.grant_encrypt_decrypt(iam.ServicePrincipal("cloudwatch.amazonaws.com"))
    topic = sns.Topic(scope, "Alarms", master_key=key, enforce_ssl=True)
    if config.alarm_email:
        topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
    return topic


def alarms(
    scope: Construct, config: DeploymentConfig, topic: sns.ITopic, cluster_name: str
) -> list[cloudwatch.Alarm]:
    container_memory = cloudwatch.Metric(
        namespace="ContainerInsights",
        metric_name="pod_memory_utilization_over_pod_limit",
        dimensions_map={"ClusterName": cluster_name, "Namespace": config.namespace},
        statistic="Maximum",
        period=MINUTE,
    )
    error_rate = cloudwatch.MathExpression(
        expression="IF(requests > 0, 100 * errors / requests, 0)",
        using_metrics={"errors": emf("Errors", "Sum"), "requests": emf("Requests", "Sum")},
        label="5xx responses (%)",
        period=MINUTE,
    )
    definitions = [
        ("MemoryNearBudget", "Resident models use over 95% of the memory budget",
         emf("MemoryUtilization", "Maximum"), 95, 5),
        ("ContainerMemoryNearLimit", "A modelhost container uses over 90% of its memory limit",
         container_memory, 90, 3),
        ("HighP99Latency", f"p99 latency above {config.latency_p99_ms} ms",
         emf("Latency", "p99"), config.latency_p99_ms, 5),
        ("High5xxRate", "Over 5% of requests answered 5xx", error_rate, 5, 5),
        ("ModelLoadFailures", "Model loads are failing",
         emf("ModelLoadFailures", "Sum", Duration.minutes(5)), 1, 1),
    ]  # fmt: skip
    created = []
    for name, description, metric, threshold, periods in definitions:
        alarm = cloudwatch.Alarm(
            scope,
            name,
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            evaluation_periods=periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(actions.SnsAction(topic))
        alarm.add_ok_action(actions.SnsAction(topic))
        created.append(alarm)
    return created


def dashboard(scope: Construct, alarm_list: list[cloudwatch.Alarm]) -> cloudwatch.Dashboard:
    board = cloudwatch.Dashboard(scope, "Dashboard", dashboard_name="modelhost")
    board.add_widgets(
        cloudwatch.GraphWidget(
            title="Requests and 5xx", left=[emf("Requests", "Sum"), emf("Errors", "Sum")]
        ),
        cloudwatch.GraphWidget(
            title="Latency (ms)",
            left=[emf("Latency", "p50"), emf("Latency", "p99")],
        ),
        cloudwatch.GraphWidget(
            title="Memory: resident models / budget (%)",
            left=[emf("MemoryUtilization", "Maximum")],
        ),
        cloudwatch.GraphWidget(
            title="Resident models, queue depth, load failures",
            left=[emf("ResidentModels", "Maximum"), emf("QueueDepth", "Maximum")],
            right=[emf("ModelLoadFailures", "Sum")],
        ),
    )
    board.add_widgets(cloudwatch.AlarmStatusWidget(title="Alarms", alarms=alarm_list, width=24))
    return board
