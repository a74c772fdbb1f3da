"""deploy/k8s: the routing tier in front of the pool (issue 10) renders as the design needs, from
the one template the local cluster uses, and HAProxy accepts it with the Deployment's settings."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from modelhost.cluster.router import find_haproxy
from tests.deploy.manifests import OVERLAYS, find, render

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy/k8s/components/routing/haproxy.cfg"


@pytest.fixture(scope="module", params=["base", "aws"])
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(OVERLAYS[request.param])


def selects(selector: dict[str, str], deployment: dict[str, Any]) -> bool:
    """Whether a Service's selector picks the Deployment's pods."""
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    return all(labels.get(key) == value for key, value in selector.items())


def test_the_routers_find_the_pools_ready_pods_through_a_headless_service(
    objects: list[dict[str, Any]],
) -> None:
    router = find(objects, "Deployment", "modelhost-router")
    (container,) = router["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    replicas = find(objects, "Service", "modelhost-replicas")
    assert replicas["spec"]["clusterIP"] == "None"
    assert replicas["spec"]["publishNotReadyAddresses"] is False  # only ready pods join the ring
    namespace = replicas["metadata"]["namespace"]
    port = replicas["spec"]["ports"][0]["port"]
    assert env["MODELHOST_ROUTING_REPLICAS"] == (
        f"modelhost-replicas.{namespace}.svc.cluster.local:{port}"
    )
    pool = find(objects, "Deployment", "modelhost")
    assert selects(replicas["spec"]["selector"], pool)
    assert not selects(replicas["spec"]["selector"], router)
    # Enough ring slots for the most replicas the autoscaler may ask for.
    scalers = [
        o
        for o in objects
        if o["kind"] in {"HorizontalPodAutoscaler", "ScaledObject"}
        and o["spec"]["scaleTargetRef"]["name"] == "modelhost"
    ]
    most = max(s["spec"].get("maxReplicas", s["spec"].get("maxReplicaCount", 0)) for s in scalers)
    assert int(env["MODELHOST_ROUTING_SLOTS"]) >= most
    # The router Service reaches the routers (and only them).
    service = find(objects, "Service", "modelhost-router")
    assert selects(service["spec"]["selector"], router)
    assert not selects(service["spec"]["selector"], pool)


def test_the_routers_run_the_one_template_and_haproxy_accepts_it(
    objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    router = find(objects, "Deployment", "modelhost-router")
    pod = router["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (volume,) = [v for v in pod["volumes"] if "configMap" in v]
    config = find(objects, "ConfigMap", volume["configMap"]["name"])
    assert config["data"]["haproxy.cfg"] == TEMPLATE.read_text()
    (mount,) = container["volumeMounts"]
    assert container["command"][-1] == f"{mount['mountPath']}/haproxy.cfg"
    # HAProxy parses it with the Deployment's environment (DNS discovery, resolvers, stats).
    (tmp_path / "haproxy.cfg").write_text(config["data"]["haproxy.cfg"])
    env = {e["name"]: e["value"] for e in container["env"]}
    checked = subprocess.run(
        [find_haproxy(), "-c", "-f", str(tmp_path / "haproxy.cfg")],
        env={"PATH": "/usr/sbin:/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    probe_port = container["readinessProbe"]["httpGet"]["port"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert env["MODELHOST_ROUTING_STATS_BIND"] == f":{ports[probe_port]}"
    assert env["MODELHOST_ROUTING_BIND"] == f":{ports['http']}"


def test_the_alb_sends_to_the_routers() -> None:
    objects = render(OVERLAYS["aws"])
    backend = find(objects, "Ingress")["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    assert backend["service"]["name"] == "modelhost-router"
