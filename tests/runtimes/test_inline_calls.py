"""Cheap model calls run on the event loop; slow ones, and runtimes that may wait, never do."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from modelhost.manifest import Manifest
from modelhost.runtimes.base import Runtime, Tensors
from modelhost.runtimes.pool import BLOCKS_ALLOWED, InstancePool


class Spinner(Runtime):
    """Computes for ``seconds`` of CPU on the calling thread and says which thread that was."""

    may_run_inline = True

    def __init__(self, seconds: float = 0.0) -> None:
        super().__init__()
        self.seconds = seconds

    def load(self, path: Path, manifest: Manifest) -> None:
        pass

    def predict(self, inputs: Tensors) -> Tensors:
        until = time.thread_time() + self.seconds
        while time.thread_time() < until:
            pass
        return {"thread": np.array([threading.get_ident()])}


class WaitingSpinner(Spinner):
    may_run_inline = False  # as the python runtime: user code may sleep or wait on I/O


def call_threads(pool: InstancePool, calls: int) -> list[int]:
    """The thread each of ``calls`` sequential calls ran on."""

    async def run() -> list[int]:
        threads = []
        for _ in range(calls):
            instance = await pool.acquire()
            result = await pool.run(instance, lambda runtime: runtime.predict({}))
            threads.append(int(result["thread"][0]))
        return threads

    return asyncio.run(run())


def test_a_cheap_model_runs_on_the_event_loop_once_measured() -> None:
    with ThreadPoolExecutor(2) as executor:
        pool = InstancePool([Spinner()], 1, executor, inline_below=0.005)
        threads = call_threads(pool, 6)
    loop_thread = threading.get_ident()  # asyncio.run runs the loop on this thread
    # Two calls in threads (the first one's cost is not trusted), the rest inline.
    assert [t == loop_thread for t in threads] == [False, False, True, True, True, True]
    assert pool.call_seconds is not None and pool.call_seconds < 0.005


def test_one_call_that_blocks_the_loop_sends_the_model_to_the_threads_until_cheap_again() -> None:
    # A shared host makes a cheap call measure ten times its cost now and then: once is not
    # enough to lose the loop for good.
    spinner = Spinner()
    with ThreadPoolExecutor(2) as executor:
        pool = InstancePool([spinner], 1, executor, inline_below=0.002)
        call_threads(pool, 3)
        assert pool.runs_inline
        spinner.seconds = 0.03  # 15x the limit: this call blocks the loop
        call_threads(pool, 1)
        assert not pool.runs_inline
        spinner.seconds = 0.0
        threads = call_threads(pool, 30)
    assert threads[0] != threading.get_ident() and threads[-1] == threading.get_ident()


def test_a_model_that_blocks_the_loop_again_and_again_goes_to_the_threads_for_good() -> None:
    spinner = Spinner()
    with ThreadPoolExecutor(2) as executor:
        pool = InstancePool([spinner], 1, executor, inline_below=0.002)
        for _ in range(BLOCKS_ALLOWED):
            spinner.seconds = 0.0
            call_threads(pool, 30)  # cheap again: back on the loop
            assert pool.runs_inline
            spinner.seconds = 0.03
            call_threads(pool, 1)  # blocks it
        spinner.seconds = 0.0
        threads = call_threads(pool, 50)
    assert not pool.runs_inline
    assert threading.get_ident() not in threads


def test_a_model_that_turns_a_little_slower_goes_back_to_the_threads_until_cheap_again() -> None:
    spinner = Spinner()
    with ThreadPoolExecutor(2) as executor:
        pool = InstancePool([spinner], 1, executor, inline_below=0.05)
        call_threads(pool, 3)
        spinner.seconds = 0.08  # slower than the limit, but far from ten times it
        call_threads(pool, 1)
        assert not pool.runs_inline
        spinner.seconds = 0.0
        threads = call_threads(pool, 30)
    assert threads[0] != threading.get_ident() and threads[-1] == threading.get_ident()


def test_runtimes_that_may_wait_and_a_zero_limit_never_run_inline() -> None:
    with ThreadPoolExecutor(2) as executor:
        waiting = InstancePool([WaitingSpinner()], 1, executor, inline_below=1.0)
        off = InstancePool([Spinner()], 1, executor, inline_below=0.0)
        for pool in (waiting, off):
            assert threading.get_ident() not in call_threads(pool, 10)
            assert not pool.runs_inline
