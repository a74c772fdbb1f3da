"""Tests of optional parts (runtimes, services) fail when what they need is missing: CI must
have every extra, so nothing in this suite may skip itself."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).parent
SKIPPING = ("importor" + "skip", "pytest." + "skip(", "mark." + "skip")


def test_no_test_skips_itself() -> None:
    found = [
        f"{path.relative_to(TESTS)}: {word}"
        for path in sorted(TESTS.rglob("*.py"))
        for word in SKIPPING
        if word in path.read_text(encoding="utf-8")
    ]
    assert found == []
