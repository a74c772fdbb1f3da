"""Every runtime a model.yaml may name has a V2 platform (model metadata would be a 500)."""

from __future__ import annotations

from typing import get_args

from modelhost.inference.metadata import PLATFORMS
from modelhost.manifest import RuntimeName


def test_every_runtime_has_a_platform() -> None:
    assert set(get_args(RuntimeName)) == set(PLATFORMS)
