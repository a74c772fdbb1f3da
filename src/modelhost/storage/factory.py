"""Builds the model store a repository URI names: a folder, or ``s3://bucket/prefix``."""

from __future__ import annotations

from pathlib import Path

from modelhost.errors import BadRequest
from modelhost.settings import Settings
from modelhost.storage.artifact_cache import ArtifactCache
from modelhost.storage.base import ModelStore
from modelhost.storage.local import LocalModelStore
from modelhost.storage.s3 import S3ModelStore
from modelhost.storage.tiered import TieredModelStore


def open_store(settings: Settings) -> ModelStore:
    """The store of ``settings.model_repository``; remote stores fetch through an artifact
    cache in ``settings.cache_dir`` holding at most ``settings.cache_size`` bytes. With
    ``settings.baked_models``, the versions in that folder are served from it first."""
    store = _repository_store(settings)
    if settings.baked_models is not None:
        return TieredModelStore(LocalModelStore(settings.baked_models), store)
    return store


def _repository_store(settings: Settings) -> ModelStore:
    uri = settings.model_repository
    if uri.startswith("s3://"):
        try:
            return S3ModelStore(
                uri,
                ArtifactCache(settings.cache_dir, settings.cache_size),
                endpoint=settings.s3_endpoint,
                region=settings.s3_region,
                part_bytes=settings.s3_part_size,
                concurrency=settings.s3_concurrency,
            )
        except ValueError as exc:
            raise BadRequest(f"model repository: {exc}") from None
    if "://" in uri:
        raise BadRequest(f"model repository {uri!r}: expected a folder or s3://bucket/prefix")
    return LocalModelStore(Path(uri))
