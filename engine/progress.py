"""A progress bar on stderr: rows, audio hours, speed. Off when stderr is not a terminal."""

from __future__ import annotations

import time
from typing import Any

from engine.types import ItemError, Outcome


class Progress:
    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._bar: Any = None
        self._started = time.monotonic()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def start(self, total_rows: int, already_done: int = 0) -> None:
        """Open the bar at the rows the output already holds (a resumed run)."""
        if not self._enabled:
            return
        from tqdm import tqdm

        self._started = time.monotonic()
        self._bar = tqdm(total=total_rows, initial=already_done, unit="row", dynamic_ncols=True,
                         smoothing=0.05)

    def update(self, outcome: Outcome, summary: Any) -> None:
        if self._bar is None:
            return
        self._bar.update(1)
        if isinstance(outcome, ItemError) or self._bar.n % 10 == 0:
            elapsed = max(time.monotonic() - self._started, 1e-6)
            self._bar.set_postfix(
                audio_h=f"{summary.audio_s / 3600:.2f}", speed=f"{summary.audio_s / elapsed:.0f}x",
                errors=summary.counts["error"], refresh=False)
