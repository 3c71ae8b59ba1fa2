"""Stopping the decode pool while a worker sends a large result returns at once (a refused rerun
hung in the pool's shutdown: the worker was killed mid-send, and CPython's manager thread waited
for the rest of the message forever; found by issue 27's settings check)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

from engine.backends.pool import OrderedPool


def _large(item: int) -> bytes:
    return bytes(200 * 1024 * 1024)


def _factory() -> Callable[[int], bytes]:
    return _large


def _stop_mid_send(finished: threading.Event) -> None:
    try:
        with OrderedPool(_factory, workers=1, on_crash=lambda item: b"") as pool:
            results = pool.map(iter([1]))
            threading.Thread(target=lambda: next(results, None), daemon=True).start()
            until = time.monotonic() + 4.0
            while time.monotonic() < until:  # holding the GIL slows the result's reader down,
                pass                          # so the worker is still sending it when killed
            raise KeyError("refused")  # the pool left with an error, as a refused rerun does
    except KeyError:
        finished.set()


def test_stopping_while_a_worker_sends_a_large_result_returns() -> None:
    finished = threading.Event()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.05)
    try:
        thread = threading.Thread(target=_stop_mid_send, args=(finished,), daemon=True)
        thread.start()
        thread.join(timeout=90)
    finally:
        sys.setswitchinterval(interval)
    assert finished.is_set(), "the pool's shutdown hung"
