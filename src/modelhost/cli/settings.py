"""Settings for CLI commands: MODELHOST_* variables with the command line's options on top."""

from __future__ import annotations

from typing import Any

import typer
from pydantic import ValidationError

from modelhost.settings import Settings


def build_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise typer.BadParameter(problems) from None
