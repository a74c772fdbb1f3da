"""Importing user code from a version folder: ``entry_point: module:Class`` in model.yaml."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from typing import Any

from modelhost.errors import ModelLoadFailed

_module_ids = itertools.count()


def import_entry_point(path: Path, entry_point: str) -> Any:
    """The class ``entry_point`` (``module:Class``) names in the version folder ``path``.

    Blocking (it reads and runs the module): call it in a worker thread.
    """
    module_name, _, class_name = entry_point.partition(":")
    if not module_name or not class_name or "/" in module_name or ".." in module_name:
        raise ModelLoadFailed(f"entry_point {entry_point!r} is not 'module:Class'")
    source = path / f"{module_name.replace('.', '/')}.py"
    if not source.is_file():
        raise ModelLoadFailed(f"entry_point module {source.name} is not in {path}")
    # A unique module name per load: two versions (or instances) never share module state.
    unique = f"modelhost_user_{module_name.replace('.', '_')}_{next(_module_ids)}"
    spec = importlib.util.spec_from_file_location(unique, source)
    if spec is None or spec.loader is None:
        raise ModelLoadFailed(f"cannot import {source}")
    module = importlib.util.module_from_spec(spec)
    # Registered while it runs (dataclasses and the like look themselves up there), then
    # dropped: the class keeps its module's globals alive, the registry entry would leak.
    sys.modules[unique] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(unique, None)
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ModelLoadFailed(f"{source.name} defines no class {class_name!r}")
    return cls
