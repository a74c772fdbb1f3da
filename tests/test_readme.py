"""The README documents every setting there is."""

from __future__ import annotations

from pathlib import Path

from modelhost.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [
        f"MODELHOST_{name.upper()}"
        for name in Settings.model_fields
        if f"MODELHOST_{name.upper()}" not in README
    ]
    assert missing == []
