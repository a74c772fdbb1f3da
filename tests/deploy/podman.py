"""Images built from this repository with podman, as the tests need them, cached between runs.

No registry can be reached from here, so the base image is made with mmdebstrap (a minimal
Debian with Python 3.11) and imported; the Dockerfile builds on it exactly as it would on the
official ``python:3.11-slim-bookworm``. Each image is tagged with a hash of its inputs (the build
context as .dockerignore selects it, the build arguments, the base image), so a later run whose
inputs are unchanged finds it in podman's store and builds nothing. A file lock keeps two test
sessions on one machine from building the same image at once.
"""

from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNC_WRAPPER = Path(__file__).with_name("runc_without_rlimits.py")
LOCK = Path(tempfile.gettempdir()) / "modelhost-test-images.lock"
# The image the container tests run (the runtimes the demo models need), and the folder the
# baked-model test bakes into it.
TEST_EXTRAS = "onnx,sklearn"
BAKED_MODEL_DIR = "deploy/image/example-models"
# The base: what the Dockerfile needs from python:3.11-slim-bookworm (Python 3.11 with venv,
# CA certificates, useradd), without documentation and translations, as the slim images do.
MMDEBSTRAP = [
    "mmdebstrap",
    "--variant=minbase",
    "--include=python3,python3-venv,ca-certificates,passwd",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-include=/usr/share/locale/locale.alias",
    "bookworm",
]


def podman(
    *args: str, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@contextmanager
def build_lock() -> Iterator[None]:
    with open(LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def image_exists(tag: str) -> bool:
    return podman("image", "exists", tag, check=False).returncode == 0


def base_image() -> str:
    """The mmdebstrap base, imported into podman once per machine (the recipe is its tag)."""
    key = hashlib.sha256(" ".join(MMDEBSTRAP).encode()).hexdigest()[:16]
    tag = f"localhost/modelhost-test-base:{key}"
    with build_lock():
        if image_exists(tag):
            return tag
        with tempfile.TemporaryDirectory(prefix="modelhost-base-") as scratch:
            tarball = Path(scratch) / "base.tar"
            subprocess.run(
                [*MMDEBSTRAP, str(tarball)], check=True, capture_output=True, timeout=900
            )
            podman("import", "--quiet", str(tarball), tag)
    return tag


def _context_files() -> list[Path]:
    """The files of the build context, chosen the way .dockerignore chooses them (it lists
    what goes in with ``!PATH`` after ``*``, and patterns of names that stay out)."""
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    included = [line[1:].rstrip("/") for line in lines if line.startswith("!")]
    excluded = [line.removeprefix("**/") for line in lines if line != "*" and line[0] != "!"]
    files: list[Path] = []
    for entry in included:
        path = ROOT / entry
        candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in candidates:
            parts = file.relative_to(ROOT).parts
            if not any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in excluded):
                files.append(file)
    return files


def inputs_hash(build_args: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for file in [ROOT / "Dockerfile", ROOT / ".dockerignore", *_context_files()]:
        digest.update(str(file.relative_to(ROOT)).encode() + b"\0")
        digest.update(file.read_bytes() + b"\0")
    for key, value in sorted(build_args.items()):
        digest.update(f"{key}={value}\0".encode())
    return digest.hexdigest()[:16]


def _pip_passthrough() -> tuple[list[str], dict[str, str]]:
    """Mounts and build arguments that let pip inside the build reach what it reaches here:
    the host's CA bundle (never baked into the image), and local wheel folders and package
    indexes from pip's configuration (the CPU build of torch lies in one on this machine)."""
    mounts: list[str] = []
    args: dict[str, str] = {}
    cert = os.environ.get("PIP_CERT")
    if cert and Path(cert).is_file():
        mounts += ["-v", f"{cert}:/etc/ssl/certs/ca-certificates.crt:ro"]
    config = subprocess.run(
        ["python3", "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    find_links: list[str] = []
    indexes: list[str] = []
    for line in config.splitlines():
        key, _, value = line.partition("=")
        values = value.strip().strip("'\"").split()
        if key.endswith("find-links"):
            find_links += values
        elif key.endswith("extra-index-url"):
            indexes += values
    local_dirs = {
        v.removeprefix("file://").removesuffix("/simple").rstrip("/")
        for v in find_links + indexes
        if v.startswith("/") or v.startswith("file://")
    }
    for folder in sorted(d for d in local_dirs if Path(d).is_dir()):
        mounts += ["-v", f"{folder}:{folder}:ro"]
    if find_links:
        args["PIP_FIND_LINKS"] = " ".join(dict.fromkeys(find_links))
    if indexes:
        args["PIP_EXTRA_INDEX_URL"] = " ".join(dict.fromkeys(indexes))
    return mounts, args


def build_image(extras: str, model_dir: str | None = None) -> tuple[str, float]:
    """The image of this checkout with ``extras`` (and ``model_dir`` baked in); built unless
    an image with the same inputs exists. Returns its tag and the seconds the build took (0
    when it came from the cache)."""
    base = base_image()
    base_id = podman("image", "inspect", "--format", "{{.Id}}", base).stdout.strip()
    build_args = {"BASE_IMAGE": base, "EXTRAS": extras}
    if model_dir is not None:
        build_args["MODEL_DIR"] = model_dir
    tag = f"localhost/modelhost-test:{inputs_hash({**build_args, 'base': base_id})}"
    with build_lock():
        if image_exists(tag):
            return tag, 0.0
        mounts, pip_args = _pip_passthrough()
        arguments = [f"--build-arg={k}={v}" for k, v in {**pip_args, **build_args}.items()]
        started = time.monotonic()
        podman(
            "build",
            "--isolation=chroot",
            "--network=host",
            "--format=docker",  # keeps HEALTHCHECK (OCI images have no such field)
            *mounts,
            *arguments,
            "--tag",
            tag,
            str(ROOT),
            timeout=1200,
        )
        return tag, time.monotonic() - started


@cache
def runtime_args() -> tuple[str, ...]:
    """``--runtime`` for ``podman run`` where this machine's sandbox refuses rlimits (podman
    sets them in every container), nothing where a plain ``podman run`` works."""
    plain = podman("run", "--rm", "--network=none", base_image(), "true", check=False)
    if plain.returncode == 0:
        return ()
    assert "rlimit" in plain.stderr, plain.stderr
    assert shutil.which("runc"), "runc is missing: scripts/deploy-tools installs it"
    return (f"--runtime={RUNC_WRAPPER}",)


def image_size(tag: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())
