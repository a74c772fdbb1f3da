"""The rendered Deployment's pod, run by ``podman kube play`` with the image built here.

This proves what a schema cannot: the image, args, env (ConfigMap and Secret), volumes,
read-only root filesystem, non-root user and probes of the manifest make a pod that starts
and becomes ready. The test overlay changes only what a laptop lacks: the image is the local
test image, one replica, the ConfigMap and Secret point at a mounted model folder and a SQLite
file on the pod's state volume, and the HTTP port is published on 127.0.0.1.
"""

from __future__ import annotations

import base64
import copy
import os
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.deploy.manifests import OVERLAYS, find, render
from tests.deploy.podman import podman, runtime_args
from tests.support.server import free_port

IRIS = {
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]
}


def write_test_overlay(folder: Path, image: str, models: Path, port: int) -> None:
    name, tag = image.rsplit(":", 1)
    base = os.path.relpath(OVERLAYS["base"], folder)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [base],
        "images": [{"name": "modelhost", "newName": name, "newTag": tag}],
        "configMapGenerator": [
            {
                "name": "modelhost-config",
                "behavior": "merge",
                "literals": ["MODELHOST_MODEL_REPOSITORY=/models", "MODELHOST_AUTH=disabled"],
            }
        ],
        "secretGenerator": [
            {
                "name": "modelhost-secrets",
                "behavior": "replace",
                "literals": ["MODELHOST_DATABASE_URL=sqlite:////var/lib/modelhost/modelhost.db"],
            }
        ],
        "generatorOptions": {"disableNameSuffixHash": True},
        "patches": [
            {
                "target": {"kind": "Deployment"},
                "patch": yaml.safe_dump(
                    [
                        {"op": "replace", "path": "/spec/replicas", "value": 1},
                        {"op": "replace", "path": f"{CONTAINER}/imagePullPolicy", "value": "Never"},
                        {"op": "add", "path": f"{CONTAINER}/ports/0/hostPort", "value": port},
                        {"op": "add", "path": f"{CONTAINER}/ports/0/hostIP", "value": "127.0.0.1"},
                        {
                            "op": "add",
                            "path": "/spec/template/spec/volumes/-",
                            "value": {
                                "name": "models",
                                "hostPath": {"path": str(models), "type": "Directory"},
                            },
                        },
                        {
                            "op": "add",
                            "path": f"{CONTAINER}/volumeMounts/-",
                            "value": {"name": "models", "mountPath": "/models", "readOnly": True},
                        },
                    ]
                ),
            }
        ],
    }
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))


CONTAINER = "/spec/template/spec/containers/0"


def playable(objects: list[dict[str, Any]], suffix: str) -> list[dict[str, Any]]:
    """The Deployment with its ConfigMap and Secret, as podman 4.3's kube play takes them: it
    stores a Secret object but cannot read it back ("not valid JSON"), so the Secret's keys go
    to the pod through a ConfigMap of the same content. Names get a suffix of this run's own."""
    deployment = find(objects, "Deployment", "modelhost")
    config = find(objects, "ConfigMap", "modelhost-config")
    secret = find(objects, "Secret", "modelhost-secrets")
    secret_as_config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"modelhost-secrets-{suffix}"},
        "data": {k: base64.b64decode(v).decode() for k, v in secret["data"].items()},
    }
    config["metadata"]["name"] = f"modelhost-config-{suffix}"
    deployment["metadata"]["name"] = f"modelhost-{suffix}"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    envs = []
    for source in container["envFrom"]:
        if "secretRef" in source:
            envs.append({"configMapRef": {"name": f"modelhost-secrets-{suffix}"}})
        else:
            envs.append({"configMapRef": {"name": f"modelhost-config-{suffix}"}})
    container["envFrom"] = envs
    return [config, secret_as_config, deployment]


def test_the_rendered_deployment_runs_under_podman_kube_play(
    image: str, demo_models: Path, tmp_path: Path
) -> None:
    port = free_port()
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    write_test_overlay(overlay, image, demo_models, port)
    objects = render(overlay)
    deployment = copy.deepcopy(find(objects, "Deployment", "modelhost"))
    spec = deployment["spec"]["template"]["spec"]
    manifest_container = spec["containers"][0]
    suffix = uuid.uuid4().hex[:8]
    play = tmp_path / "play.yaml"
    play.write_text(yaml.safe_dump_all(playable(objects, suffix)))

    started = time.monotonic()
    podman(*runtime_args_global(), "kube", "play", str(play), timeout=300)
    try:
        pod_container = f"modelhost-{suffix}-pod-0-modelhost"
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, podman("logs", pod_container, check=False).stderr
            time.sleep(0.2)
        print(f"kube play to ready: {time.monotonic() - started:.1f}s")

        # Each probe of the manifest answers 200 on the port it names.
        ports = {p["name"]: p["containerPort"] for p in manifest_container["ports"]}
        assert ports["http"] == 8080
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            action = manifest_container[probe]["httpGet"]
            assert action["port"] == "http"
            assert httpx.get(f"{url}{action['path']}", timeout=5).status_code == 200, probe
        # The pod serves the mounted models, on the settings of the ConfigMap.
        response = httpx.post(f"{url}/v2/models/iris-onnx/infer", json=IRIS, timeout=60)
        assert response.status_code == 200, response.text

        # As locked down as the manifest says: read-only root, non-root, capabilities dropped,
        # and the writable volumes in place.
        inspected = podman(
            "inspect", pod_container, "--format",
            "{{.HostConfig.ReadonlyRootfs}} {{.Config.User}} {{.EffectiveCaps}}",
        ).stdout.split(maxsplit=2)  # fmt: skip
        assert inspected[0] == "true"
        assert inspected[1].split(":")[0] == str(spec["securityContext"]["runAsUser"])
        assert inspected[2].strip() in ("[]", "")
        probe = podman("exec", pod_container, "sh", "-c",
                       "touch /x 2>&1; touch /var/cache/modelhost/x /var/lib/modelhost/x /tmp/x "
                       "&& echo writable", check=False)  # fmt: skip
        assert "Read-only file system" in probe.stdout
        assert "writable" in probe.stdout
    finally:
        podman("kube", "down", str(play), check=False, timeout=120)


def runtime_args_global() -> tuple[str, ...]:
    # kube play has no --runtime of its own: podman's global flag applies to the pod.
    return runtime_args()
