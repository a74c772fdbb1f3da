"""Slow set-up started when the run starts, at the lowest CPU priority, for tests that run late.

Two tests spend most of their time installing packages into a fresh virtualenv: the quick
start's demo command in a fresh clone (the whole project, torch included: ~85 s) and the KServe
SDK's own virtualenv (~45 s). Run in line, that is over two minutes of a suite that must stay
under fifteen. Started in the background as soon as the tests are collected, under ``nice 19``
(the tests in front keep the CPU; the installs take what they leave, mostly while the tests wait
on their servers), the set-up is done or nearly so by the time those tests run, and they wait for
what is left. A run that does not select a test does not start its set-up.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest


class SetUp:
    """One command run in the background; ``wait`` returns its exit status and output."""

    def __init__(
        self, argv: Sequence[str], cwd: Path, log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.log = log
        self._output = open(log, "wb")  # noqa: SIM115 - closed when it ends
        self._process = subprocess.Popen(
            ["nice", "-n", "19", *argv],
            cwd=cwd,
            env=env,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait(self, timeout: float) -> tuple[int, str]:
        code = self._process.wait(timeout)
        self._output.close()
        return code, self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._output.close()


_started: dict[str, SetUp] = {}
_scratch: Path | None = None


def scratch() -> Path:
    """A folder for the set-ups' files (a clone with its virtualenv: GBs), removed at the end."""
    global _scratch
    if _scratch is None:
        _scratch = Path(tempfile.mkdtemp(prefix="modelhost-tests-early-"))
    return _scratch


def start_for(items: Sequence[pytest.Item], plans: dict[str, Callable[[], SetUp]]) -> None:
    """Start each plan whose test (a node id's ``file::name``) is among ``items``."""
    selected = {item.nodeid for item in items}
    for test, plan in plans.items():
        if test in selected and test not in _started:
            _started[test] = plan()


def started(test: str) -> SetUp | None:
    return _started.get(test)


def stop_all() -> None:
    global _scratch
    for set_up in _started.values():
        set_up.stop()
    _started.clear()
    if _scratch is not None:
        shutil.rmtree(_scratch, ignore_errors=True)
        _scratch = None
