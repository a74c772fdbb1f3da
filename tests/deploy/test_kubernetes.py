"""deploy/k8s: every overlay renders, and what it renders is what the design needs."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import (
    CUSTOM_KINDS,
    K8S,
    KUBERNETES_VERSION,
    OVERLAYS,
    ROOT,
    find,
    render,
)

MONITORING = ROOT / "deploy" / "monitoring"
GRPC_PORT = 8081  # the image's MODELHOST_GRPC_PORT
TOOLS = ROOT / "deploy" / "tools"


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(folder) for name, folder in OVERLAYS.items()}


def server_deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The modelhost Deployment (the routing tier has one of its own beside it)."""
    (found,) = [
        o
        for o in objects
        if o["kind"] == "Deployment"
        and o["metadata"]["labels"].get("app.kubernetes.io/component") == "server"
    ]
    return found


def server_container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "modelhost")


def test_every_overlay_renders(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name, objects in rendered.items():
        kinds = {o["kind"] for o in objects}
        assert {"Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "Job"} <= kinds, name
        assert {"NetworkPolicy", "ServiceMonitor", "PrometheusRule", "ServiceAccount"} <= kinds
        assert all(
            o["metadata"].get("namespace") == "modelhost"
            for o in objects
            if o["kind"] not in {"Namespace", "StorageClass"}
        ), name
        # One autoscaler per Deployment: the plain HPA, or KEDA's (which makes its own HPA).
        for deployment in (o for o in objects if o["kind"] == "Deployment"):
            name_ = deployment["metadata"]["name"]
            scalers = [
                o
                for o in objects
                if o["kind"] in {"HorizontalPodAutoscaler", "ScaledObject"}
                and o["spec"]["scaleTargetRef"]["name"] == name_
            ]
            assert len(scalers) == 1, (name, name_, scalers)


def test_the_pod_is_locked_down_and_sized_by_its_limits(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for name, objects in rendered.items():
        deployment = server_deployment(objects)
        pod = deployment["spec"]["template"]["spec"]
        container = server_container(deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001  # the image's user
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert pod["automountServiceAccountToken"] is False
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["MODELHOST_MEMORY_BUDGET"] == "auto" and env["MODELHOST_CORES"] == "auto"
        limits, requests = container["resources"]["limits"], container["resources"]["requests"]
        assert limits["memory"] == requests["memory"], name  # no overcommit of model memory
        # Probes on the real endpoints; startup long enough for pinned loads.
        assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
        assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
        # The drain fits in the grace period: preStop pause + MODELHOST_SHUTDOWN_GRACE_SECONDS.
        config = find(objects, "ConfigMap", "modelhost-config")["data"]
        pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
        drain = float(config["MODELHOST_SHUTDOWN_GRACE_SECONDS"])
        assert pause + drain < pod["terminationGracePeriodSeconds"]
        # Writable paths are volumes; the artifact cache has a size bound it stays under.
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert {"/var/cache/modelhost", "/var/lib/modelhost", "/tmp"} <= mounts.keys()
        volumes = {v["name"]: v for v in pod["volumes"]}
        cache = volumes[mounts["/var/cache/modelhost"]]
        assert "emptyDir" in cache or "ephemeral" in cache
        zones = [c["topologyKey"] for c in pod["topologySpreadConstraints"]]
        assert "topology.kubernetes.io/zone" in zones


def test_grpc_port_is_open_in_every_overlay(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name, objects in rendered.items():
        deployment = server_deployment(objects)
        container = server_container(deployment)
        env = {e["name"]: e.get("value") for e in container["env"]}
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["grpc"] == int(env["MODELHOST_GRPC_PORT"]) == GRPC_PORT, name
        # The server's Service carries it as HTTP/2 in clear text, and the policy lets it in.
        selector = deployment["spec"]["selector"]["matchLabels"]
        service = find(objects, "Service", deployment["metadata"]["name"])
        grpc = next(p for p in service["spec"]["ports"] if p["targetPort"] == "grpc")
        assert grpc["appProtocol"] == "kubernetes.io/h2c", name
        policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
        admitted = {
            port["port"]
            for policy in policies
            if policy["spec"]["podSelector"]["matchLabels"].items() <= selector.items()
            for rule in policy["spec"].get("ingress", [])
            for port in rule.get("ports", [])
        }
        assert GRPC_PORT in admitted, name


def test_grpc_probes_component(deploy_tools: Path, tmp_path: Path) -> None:
    """components/grpc-probes: the server's probes call grpc.health.v1 on the gRPC port; the
    routing tier's stay HTTP. Rendered with the base, and strictly valid."""
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(OVERLAYS["base"], tmp_path)],
                "components": [os.path.relpath(K8S / "components" / "grpc-probes", tmp_path)],
            }
        )
    )
    objects = render(tmp_path)
    container = server_container(server_deployment(objects))
    assert container["livenessProbe"]["grpc"] == {"port": GRPC_PORT}
    for probe in ("readinessProbe", "startupProbe"):
        assert container[probe]["grpc"] == {"port": GRPC_PORT, "service": "readiness"}
        assert "httpGet" not in container[probe]
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
    others = [
        c
        for o in objects
        if o["kind"] == "Deployment" and o is not server_deployment(objects)
        for c in o["spec"]["template"]["spec"]["containers"]
    ]
    assert others and all("httpGet" in c["readinessProbe"] for c in others)
    built_in = [o for o in objects if o["kind"] not in CUSTOM_KINDS]
    validate_strictly(deploy_tools, write_objects(tmp_path / "grpc-probes.yaml", built_in))


def test_per_model_overlay_serves_one_model_with_its_own_autoscaler(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["per-model"]
    deployment = find(objects, "Deployment", "modelhost-iris-onnx")
    env = {e["name"]: e.get("value") for e in server_container(deployment)["env"]}
    assert env["MODELHOST_MODELS"] == "iris-onnx"
    hpa = find(objects, "HorizontalPodAutoscaler", "modelhost-iris-onnx")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "modelhost-iris-onnx"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector["modelhost.dev/deployment"] == "iris-onnx"
    assert find(objects, "Service", "modelhost-iris-onnx")["spec"]["selector"] == selector


def test_aws_overlay(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["aws"]
    ingress = find(objects, "Ingress")
    annotations = ingress["metadata"]["annotations"]
    assert ingress["spec"]["ingressClassName"] == "alb"
    assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == "/v2/health/ready"
    assert annotations["alb.ingress.kubernetes.io/target-type"] == "ip"
    assert find(objects, "StorageClass")["parameters"]["type"] == "gp3"
    deployment = server_deployment(objects)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    claim = volumes["artifact-cache"]["ephemeral"]["volumeClaimTemplate"]["spec"]
    assert claim["storageClassName"] == find(objects, "StorageClass")["metadata"]["name"]
    scaled = find(objects, "ScaledObject")
    triggers = {t.get("name", t["type"]): t for t in scaled["spec"]["triggers"]}
    query = triggers["inference-demand"]["metadata"]["query"]
    assert "modelhost_queue_wait_seconds_sum" in query
    assert "modelhost_requests_waiting_for_load" in query
    assert triggers["cpu"]["metadata"]["value"] == "70"


def test_prometheus_rule_is_generated_from_the_one_rules_file() -> None:
    generator = runpy.run_path(str(MONITORING / "make_prometheusrule.py"))
    committed = (MONITORING / "prometheusrule.yaml").read_text()
    assert committed == generator["render"](), (
        "deploy/monitoring/prometheusrule.yaml is stale: "
        "run .venv/bin/python deploy/monitoring/make_prometheusrule.py"
    )
    rules = yaml.safe_load((MONITORING / "prometheus-rules.yaml").read_text())
    rendered_rule = find(render(OVERLAYS["base"]), "PrometheusRule")
    assert rendered_rule["spec"]["groups"] == rules["groups"]


# -- validated, not only well-formed ---------------------------------------------------------


def write_objects(path: Path, objects: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump_all(objects))
    return path


def validate_strictly(deploy_tools: Path, manifest: Path) -> str:
    """kubernetes-validate --strict on the built-in objects of ``manifest``; returns its report."""
    result = subprocess.run(
        [str(deploy_tools / "kubernetes-validate"), "--strict", "--no-warn",
         "-k", KUBERNETES_VERSION, str(manifest)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_built_in_objects_validate_strictly(
    rendered: dict[str, list[dict[str, Any]]], deploy_tools: Path, tmp_path: Path
) -> None:
    for name, objects in rendered.items():
        built_in = [o for o in objects if o["kind"] not in CUSTOM_KINDS]
        report = validate_strictly(deploy_tools, write_objects(tmp_path / f"{name}.yaml", built_in))
        assert report.count("passed for resource") == len(built_in), report


def validate_custom(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    result = subprocess.run(
        ["node", str(TOOLS / "validate-custom-resources.mjs")],
        input=json.dumps(objects), capture_output=True, text=True, timeout=120, cwd=TOOLS,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    verdicts: list[dict[str, Any]] = json.loads(result.stdout)
    return verdicts


def test_custom_resources_validate_against_their_own_schemas(
    rendered: dict[str, list[dict[str, Any]]], deploy_tools: Path
) -> None:
    seen = set()
    for name, objects in rendered.items():
        custom = [o for o in objects if o["kind"] in CUSTOM_KINDS]
        seen |= {o["kind"] for o in custom}
        for verdict in validate_custom(custom):
            assert verdict["errors"] == [], (name, verdict)
    assert seen == CUSTOM_KINDS
    # The schemas are really applied: a broken ScaledObject and PrometheusRule are refused.
    scaled = json.loads(json.dumps(find(rendered["aws"], "ScaledObject")))
    scaled["spec"]["minReplicaCount"] = "two"
    rule = json.loads(json.dumps(find(rendered["base"], "PrometheusRule")))
    rule["spec"]["groups"][0]["rules"][0]["for"] = "two minutes"
    refused = validate_custom([scaled, rule])
    assert "minReplicaCount must be integer" in refused[0]["errors"][0]
    assert "for must match pattern" in refused[1]["errors"][0]


def test_checkov_passes_or_each_finding_is_suppressed_with_a_reason(
    rendered: dict[str, list[dict[str, Any]]], deploy_tools: Path, tmp_path: Path
) -> None:
    for name, objects in rendered.items():
        write_objects(tmp_path / f"{name}.yaml", objects)
    result = subprocess.run(
        [str(deploy_tools / "checkov"), "--directory", str(tmp_path), "--framework",
         "kubernetes", "--skip-download", "--compact", "--output", "json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        (check["check_id"], check["resource"], check["file_path"])
        for report in reports
        for check in report["results"]["failed_checks"]
    ]
    assert failed == []
    assert result.returncode == 0, result.stderr
    skipped = [c for r in reports for c in r["results"]["skipped_checks"]]
    print(f"checkov: {reports[0]['summary']}")
    print("suppressed: " + ", ".join(sorted({c["check_id"] for c in skipped})))
    assert skipped, "the suppressions in the manifests were not seen"
    assert all(len(c["check_result"]["suppress_comment"]) > 40 for c in skipped)  # each says why
