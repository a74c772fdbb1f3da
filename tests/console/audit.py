"""Checks run inside the page: every control has a name, text has enough contrast, and the page
does not scroll sideways (it fits a phone)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

# WCAG 2.1: contrast 4.5:1 for text, 3:1 for large text (24px, or 18.66px bold).
_AUDIT = (Path(__file__).parent / "audit.js").read_text()


def audit(page: Page) -> dict[str, Any]:
    """``problems`` (names missing, contrast too low), texts ``checked``, sideways ``overflow``."""
    result: dict[str, Any] = page.evaluate(_AUDIT)
    return result
