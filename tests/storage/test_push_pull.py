"""``modelhost models push`` and ``pull`` against a real S3 server and a folder repository."""

from __future__ import annotations

import asyncio
import filecmp
import hashlib
from pathlib import Path

from modelhost.cli.database import database
from modelhost.db.catalog import CatalogSnapshot, CatalogStore
from modelhost.settings import Settings
from tests.storage.conftest import BUCKET
from tests.storage.helpers import (
    bucket_index,
    modelhost,
    push,
    sha256_of,
    write_weights_model,
)
from tests.storage.s3server import MotoServer
from tests.support.models import write_demo_models

MiB = 1 << 20


def same_tree(left: Path, right: Path) -> bool:
    """Same file names and byte-identical contents, recursively."""
    compare = filecmp.dircmp(left, right)
    if compare.left_only or compare.right_only or compare.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(left, right, compare.common_files, shallow=False)
    if mismatch or errors:
        return False
    return all(same_tree(left / sub, right / sub) for sub in compare.common_dirs)


async def _snapshot(database_url: str) -> CatalogSnapshot:
    async with database(Settings(database_url=database_url)) as engine:
        return await CatalogStore(engine).snapshot()


def test_round_trip_through_s3_is_byte_identical_and_records_sha256s(
    tmp_path: Path, moto: MotoServer, s3_repository: str, registry_database: str
) -> None:
    source = write_weights_model(tmp_path / "src", "weights", 40 * MiB)  # multipart: 3 parts
    (source / "tokenizer").mkdir()
    (source / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    env = moto.env()

    first = push(source, "weights", s3_repository, env, "--alias", "prod")
    second = push(source, "weights", s3_repository, env)
    assert "version 1" in first.stdout and "version 2" in second.stdout  # highest + 1

    index = bucket_index(moto, BUCKET, "repo/weights/1")
    expected = {
        path.relative_to(source).as_posix(): {
            "size": path.stat().st_size,
            "sha256": sha256_of(path),
        }
        for path in source.rglob("*")
        if path.is_file()
    }
    assert index["files"] == expected
    assert index["aliases"] == ["prod"]
    # The big file went up in parts, the small ones in one request each.
    requests = moto.requests()
    assert ("POST", "/models/repo/weights/1/weights.bin?uploads=") in requests
    assert sum(1 for m, p in requests if m == "PUT" and "weights/1/weights.bin?" in p) == 3

    pulled = tmp_path / "pulled"
    result = modelhost(
        "models", "pull", "weights:1", str(pulled), "--model-repository", s3_repository, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "verified" in result.stdout
    assert same_tree(source, pulled)

    # The push registered both versions, with every file's sha256, and moved the alias.
    listing = modelhost("models", "ls", env=env).stdout
    assert "weights\t1\tpython" in listing and "weights\t2\tpython" in listing
    assert listing.splitlines()[0].endswith("prod")
    snapshot = asyncio.run(_snapshot(registry_database))
    assert snapshot.versions["weights"][1].files == expected
    assert snapshot.aliases == {"weights": {"prod": 1}}

    # No version named: the highest.
    latest = tmp_path / "latest"
    result = modelhost(
        "models", "pull", "weights", str(latest), "--model-repository", s3_repository, env=env
    )
    assert result.returncode == 0 and "version 2" in result.stdout
    assert same_tree(source, latest)


def test_a_stored_version_is_never_overwritten(
    tmp_path: Path, moto: MotoServer, s3_repository: str
) -> None:
    write_demo_models(tmp_path / "demo")
    source = tmp_path / "demo" / "iris-onnx" / "1"
    env = moto.env()
    push(source, "iris", s3_repository, env, "--version", "3")
    again = modelhost(
        "models", "push", str(source), "--name", "iris", "--version", "3",
        "--model-repository", s3_repository, env=env,
    )  # fmt: skip
    assert again.returncode == 1
    assert "already holds version 3 of model 'iris'" in again.stderr


def test_pull_refuses_an_object_changed_behind_its_back(
    tmp_path: Path, moto: MotoServer, s3_repository: str
) -> None:
    source = write_weights_model(tmp_path / "src", "weights", 1 * MiB)
    env = moto.env()
    push(source, "weights", s3_repository, env)
    recorded = sha256_of(source / "weights.bin")
    tampered = b"\0" * (1 * MiB)
    moto.put(BUCKET, "repo/weights/1/weights.bin", tampered)

    pulled = tmp_path / "pulled"
    result = modelhost(
        "models", "pull", "weights:1", str(pulled), "--model-repository", s3_repository, env=env
    )
    assert result.returncode == 1
    assert "weights/1/weights.bin" in result.stderr
    assert recorded in result.stderr and hashlib.sha256(tampered).hexdigest() in result.stderr
    assert not (pulled / "weights.bin").exists()  # nothing unverified is left behind


def test_push_and_pull_with_a_folder_repository(tmp_path: Path) -> None:
    source = write_weights_model(tmp_path / "src", "weights", 3 * MiB)
    repository = tmp_path / "repository"
    push(source, "weights", str(repository), {})
    version_dir = repository / "weights" / "1"
    assert same_tree(source, version_dir.parent / "1") is False  # it also holds the index
    assert (version_dir / ".modelhost" / "files.json").is_file()
    assert [p.name for p in (repository / "weights").iterdir()] == ["1"]  # no staging left

    pulled = tmp_path / "pulled"
    result = modelhost(
        "models", "pull", "weights", str(pulled), "--model-repository", str(repository)
    )
    assert result.returncode == 0, result.stderr
    assert same_tree(source, pulled)

    # A file changed after the push is caught by the pull.
    (version_dir / "weights.bin").write_bytes(b"x" * (3 * MiB))
    result = modelhost(
        "models", "pull", "weights", str(tmp_path / "again"), "--model-repository", str(repository)
    )
    assert result.returncode == 1 and sha256_of(source / "weights.bin") in result.stderr


def test_push_refuses_a_folder_without_a_valid_model_yaml(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "weights.bin").write_bytes(b"1234")
    result = modelhost(
        "models", "push", str(source), "--name", "w", "--model-repository", str(tmp_path / "r")
    )
    assert result.returncode == 1 and "model.yaml" in result.stderr
    assert not (tmp_path / "r" / "w").exists()
