"""The wiring hands each consumer the narrow thing it needs: no route, middleware, collector or
data-plane module gets the whole :class:`~modelhost.services.Services` to reach through."""

from __future__ import annotations

import ast
from pathlib import Path

import modelhost

SOURCE = Path(modelhost.__file__).parent


def _importers_of(module: str) -> set[str]:
    found = set()
    for path in SOURCE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            if module in names:
                found.add(path.relative_to(SOURCE).as_posix())
    return found


def test_only_the_app_factory_sees_the_whole_wiring() -> None:
    assert _importers_of("modelhost.services") == {"app.py"}


def test_nothing_reaches_for_services_through_the_app_state() -> None:
    offenders = [
        path.relative_to(SOURCE).as_posix()
        for path in SOURCE.rglob("*.py")
        if "state.services" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []
