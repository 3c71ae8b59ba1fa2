"""Stopping a run on SIGINT or SIGTERM: finish cleanly, keep what is done, exit 130 or 143.

The first signal raises `Stopped` in the main thread, wherever it waits; the run's `finally`
blocks commit the rows finished so far, kill the decode workers and close the model. A second
signal while that happens exits at once (128 + signal number), as a second Ctrl-C is meant to.
Inside `deferred()` (a row being written and counted) the first signal waits for the block's end.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_state: dict[str, Any] = {"deferring": False, "pending": None}  # signals are process-wide


class Stopped(BaseException):
    """The run was asked to stop by a signal (not an error of the run: BaseException)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + signum  # what a shell reports for a process the signal ended
        super().__init__(f"stopped by {self.name}")


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise `Stopped` (main thread only; else a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping: list[int] = []

    def handle(signum: int, frame: FrameType | None) -> None:
        if stopping:
            os._exit(128 + signum)
        stopping.append(signum)
        if _state["deferring"]:
            _state["pending"] = signum
            return
        raise Stopped(signum)

    previous = {s: signal.signal(s, handle) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def deferred() -> Iterator[None]:
    """A block that a stop signal does not cut in two: `Stopped` comes at its end."""
    _state["deferring"] = True
    try:
        yield
    finally:
        _state["deferring"] = False
    signum, _state["pending"] = _state["pending"], None
    if signum is not None:
        raise Stopped(signum)
