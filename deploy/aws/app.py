#!/usr/bin/env python3
"""The modelhost AWS CDK app: `cdk synth` / `cdk deploy` in this folder (README: Deploy).

Context (cdk.json, or -c key=value): account, region, environment (dev|prod),
nodeInstanceType, nodeMin, nodeMax, nodeDesired, nodeDiskGiB, dbInstanceType, dbMultiAz,
redis, alarmEmail, latencyP99Ms. cdk-nag's AwsSolutions checks run on every synth.
"""

from __future__ import annotations

import os

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks

from modelhost_aws.config import DeploymentConfig
from modelhost_aws.stack import ModelhostStack


def build_app(app: App) -> ModelhostStack:
    account = app.node.try_get_context("account") or os.environ.get("CDK_DEFAULT_ACCOUNT")
    region = app.node.try_get_context("region") or os.environ.get("CDK_DEFAULT_REGION")
    config = DeploymentConfig.from_context(app.node)
    stack = ModelhostStack(
        app,
        f"modelhost-{config.environment}",
        config,
        env=Environment(account=account, region=region),
        description="modelhost: model serving on EKS (deploy/aws)",
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack


if __name__ == "__main__":
    application = App()
    build_app(application)
    application.synth()
