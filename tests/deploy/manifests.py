"""The Kubernetes manifests under deploy/k8s, rendered by kustomize (``kubectl kustomize``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = {
    "base": K8S / "base",
    "aws": K8S / "overlays" / "aws",
    "per-model": K8S / "overlays" / "per-model",
}
# Kinds that Kubernetes itself defines; the rest are custom resources with their own schemas.
CUSTOM_KINDS = {"ScaledObject", "ServiceMonitor", "PrometheusRule"}
# The Kubernetes version the objects are validated against: the EKS version of deploy/aws.
KUBERNETES_VERSION = "1.33.0"


def kubectl() -> str:
    found = shutil.which("kubectl")
    assert found, "kubectl is missing: scripts/deploy-tools installs it"
    return found


def render(folder: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize FOLDER`` renders (what ``kubectl apply -k`` would send)."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"{len(matches)} {kind} {name or ''} objects"
    return matches[0]
