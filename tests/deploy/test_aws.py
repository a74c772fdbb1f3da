"""deploy/aws: the CDK app synthesizes offline, its tests pass, cdk-nag finds nothing left.

The CDK, cdk-nag and the app's own tests (aws_cdk.assertions) live in .venv-deploy; this runs
them there, and runs the real ``cdk synth`` of the command line the README uses.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from tests.deploy.podman import ROOT

AWS = ROOT / "deploy" / "aws"
CDK = ROOT / "deploy" / "tools" / "node_modules" / ".bin" / "cdk"


def deploy_env(deploy_tools: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{deploy_tools}{os.pathsep}{os.environ['PATH']}",  # python3 = .venv-deploy's
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        "CDK_DISABLE_VERSION_CHECK": "1",
        # No AWS account: the app takes its account, region and zones from cdk(.context).json.
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def test_the_cdk_apps_own_assertions_pass(deploy_tools: Path) -> None:
    result = subprocess.run(
        [str(deploy_tools / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--rootdir", str(AWS), "-c", os.devnull, str(AWS / "tests")],
        cwd=AWS, env=deploy_env(deploy_tools), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    summary = re.search(r"(\d+) passed", result.stdout)
    assert summary and int(summary.group(1)) >= 8, result.stdout[-2000:]
    assert "failed" not in result.stdout.splitlines()[-1]


def test_cdk_synth_offline_with_cdk_nag(deploy_tools: Path, tmp_path: Path) -> None:
    out = tmp_path / "cdk.out"
    result = subprocess.run(
        [str(CDK), "synth", "--no-notices", "--no-version-reporting", "--output", str(out),
         "--quiet", "--context", "environment=prod", "--context", "redis=true"],
        cwd=AWS, env=deploy_env(deploy_tools), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    # cdk-nag's AwsSolutions pack runs as a validation plugin: any finding not acknowledged
    # in code (modelhost_aws/findings.py, each with its reason) fails the synth.
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    template = json.loads((out / "modelhost-prod.template.json").read_text())
    kinds = {resource["Type"] for resource in template["Resources"].values()}
    assert {"AWS::EKS::Cluster", "AWS::RDS::DBInstance", "AWS::ElastiCache::ReplicationGroup",
            "AWS::S3::Bucket", "AWS::CloudWatch::Alarm"} <= kinds  # fmt: skip
    # No kubectl Lambda layer or custom resource: Pod Identity needs none.
    assert not any("Lambda::LayerVersion" in kind for kind in kinds)
