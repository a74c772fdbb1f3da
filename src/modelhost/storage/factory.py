"""Builds the model store a repository URI names: a folder, or ``s3://bucket/prefix``."""

from __future__ import annotations

from pathlib import Path

from modelhost.errors import BadRequest
from modelhost.settings import Settings
from modelhost.storage.artifact_cache import ArtifactCache
from modelhost.storage.base import ModelStore
from modelhost.storage.local import LocalModelStore
from modelhost.storage.s3 import S3ModelStore


def open_store(settings: Settings) -> ModelStore:
    """The store of ``settings.model_repository``; remote stores fetch through an artifact
    cache in ``settings.cache_dir`` holding at most ``settings.cache_size`` bytes."""
    uri = settings.model_repository
    if uri.startswith("s3://"):
        try:
            return S3ModelStore(
                uri,
                ArtifactCache(settings.cache_dir, settings.cache_size),
                endpoint=settings.s3_endpoint,
                region=settings.s3_region,
            )
        except ValueError as exc:
            raise BadRequest(f"model repository: {exc}") from None
    if "://" in uri:
        raise BadRequest(f"model repository {uri!r}: expected a folder or s3://bucket/prefix")
    return LocalModelStore(Path(uri))
