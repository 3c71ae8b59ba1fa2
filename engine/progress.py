"""Progress on stderr: rows, audio hours, speed, ETA.

On a terminal, a bar. Elsewhere (logs, nohup, Ray, CI), a line every `every_s` seconds: a bar's
carriage returns make one unreadable line in a log. Both modes say first that the model is
loading, since loading it and starting the decode workers can take a while before any row.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, Literal, TextIO

if TYPE_CHECKING:  # engine.types imports numpy: `--help` imports this module
    from engine.types import Outcome

Mode = Literal["bar", "lines", "off"]
EVERY_S = 10.0


class Progress:
    """Receives the run's callbacks (`loading`, `start`, `update`) and shows them."""

    def __init__(self, mode: Mode, every_s: float = EVERY_S, stream: TextIO | None = None) -> None:
        self._mode = mode
        self._every_s = every_s
        self._stream = stream or sys.stderr
        self._bar: Any = None
        self._started = self._last_line = time.monotonic()
        self._total = self._already = self._done = 0
        self.summary: Any = None  # the last RunSummary seen: what a stopped run kept

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def loading(self, model: str) -> None:
        """Say that the model (its folder, device and compute type) starts loading."""
        if self._mode != "off":
            self._write(f"loading the model {model}; decode workers starting")

    def start(self, total_rows: int, already_done: int = 0) -> None:
        """The run starts: `total_rows` in this shard, `already_done` of them in the output."""
        self._started = self._last_line = time.monotonic()
        self._total, self._already = total_rows, already_done
        if self._mode == "lines":
            self._write(f"model loaded; {total_rows - already_done} rows to transcribe "
                        f"({already_done} of {total_rows} already done)")
        if self._mode != "bar":
            return
        from tqdm import tqdm

        self._bar = tqdm(total=total_rows, initial=already_done, unit="row", dynamic_ncols=True,
                         smoothing=0.05, file=self._stream)

    def update(self, outcome: Outcome, summary: Any) -> None:
        """A row was written; `summary` is the run's RunSummary so far."""
        from engine.types import ItemError

        self.summary = summary
        self._done += 1
        if self._bar is not None:
            self._bar.update(1)
            if isinstance(outcome, ItemError) or self._bar.n % 10 == 0:
                elapsed = max(time.monotonic() - self._started, 1e-6)
                self._bar.set_postfix(
                    audio_h=f"{summary.audio_s / 3600:.2f}",
                    speed=f"{summary.audio_s / elapsed:.0f}x",
                    errors=summary.counts["error"], refresh=False)
        elif self._mode == "lines" and time.monotonic() - self._last_line >= self._every_s:
            self._last_line = time.monotonic()
            self._write(self.line(summary))

    def kept(self) -> tuple[int, int]:
        """Rows written by this run so far, and rows the output held before it (the summary
        also counts a row written as a stop signal came, which was never reported)."""
        return (self.summary.rows if self.summary is not None else self._done), self._already

    def line(self, summary: Any) -> str:
        """"progress: 120/1000 rows (12%), 0.53 h of audio, 85x realtime, 0 errors, ETA 3m20s"."""
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rows = self._already + self._done
        rate = self._done / elapsed
        left = max(self._total - rows, 0)
        eta = _duration(left / rate) if rate > 0 else "unknown"
        share = f" ({100 * rows / self._total:.0f}%)" if self._total else ""
        return (f"progress: {rows}/{self._total} rows{share}, {summary.audio_s / 3600:.2f} h of "
                f"audio, {summary.audio_s / elapsed:.1f}x realtime, "
                f"{summary.counts['error']} errors, ETA {eta}")

    def _write(self, text: str) -> None:
        print(f"batchscribe: {text}", file=self._stream, flush=True)


def _duration(seconds: float) -> str:
    """"42s", "3m20s", "5h07m"."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
