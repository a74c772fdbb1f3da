"""Fixtures of the deploy tests: the tools they run, and the image, built once per session."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.deploy.podman import BAKED_MODEL_DIR, ROOT, TEST_EXTRAS, build_image
from tests.support.models import write_demo_models

# A cold image build takes minutes (scripts/test usually has it ready before these run).
IMAGE_BUILD_TIMEOUT = 1500


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Deploy tests run last: scripts/test builds their image in the background meanwhile.
    Those that may wait for a build get the build's time on top of the usual limit."""
    deploy = [item for item in items if "tests/deploy/" in item.nodeid]
    for item in deploy:
        if {"image", "baked_image"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.timeout(IMAGE_BUILD_TIMEOUT))
    if deploy and len(deploy) < len(items):
        others = [item for item in items if "tests/deploy/" not in item.nodeid]
        items[:] = others + deploy


@pytest.fixture(scope="session")
def deploy_tools() -> Path:
    """scripts/deploy-tools has run (scripts/test runs it first; here it returns at once)."""
    subprocess.run([str(ROOT / "scripts" / "deploy-tools")], check=True, timeout=1200)
    return ROOT / ".venv-deploy" / "bin"


@pytest.fixture(scope="session")
def image(deploy_tools: Path) -> str:
    tag, seconds = build_image(TEST_EXTRAS)
    print(f"image {tag}: {f'built in {seconds:.0f}s' if seconds else 'cached'}")
    return tag


@pytest.fixture(scope="session")
def baked_image(image: str) -> str:
    """The test image with deploy/image/example-models baked in (a layer on top of it)."""
    tag, seconds = build_image(TEST_EXTRAS, model_dir=BAKED_MODEL_DIR)
    print(f"baked image {tag}: {f'built in {seconds:.0f}s' if seconds else 'cached'}")
    return tag


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo models, readable by the image's non-root user."""
    root = tmp_path_factory.mktemp("image-models")
    write_demo_models(root)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root
