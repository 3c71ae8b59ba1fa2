"""Long files decoded in fixed windows, so that a worker never holds a whole recording.

`decode_windows` yields the same samples as `audio.decode` (both read through `reader`: same
decoders, same conversion, same region cut, local or remote), `WINDOW_SAMPLES` at a time;
`probe_duration_s` reads only a file's header, to choose between the two. Windows are a whole
number of the VAD model's 10,000-frame batches, so that the speech probabilities computed window
by window equal those of the whole file (see `vad`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from engine.errors import AudioDecodeError
from engine.prepare.audio import check_sound
from engine.prepare.reader import probe_duration_s, read_pieces
from engine.types import AudioItem

__all__ = ["WINDOW_SAMPLES", "SampleCutter", "decode_windows", "probe_duration_s"]

WINDOW_SAMPLES = 10000 * 512  # 320 s at 16 kHz: the VAD model's batch of 10,000 frames


def decode_windows(item: AudioItem, window: int = WINDOW_SAMPLES) -> Iterator[np.ndarray]:
    """The item's samples (float32 mono, 16 kHz, its region), `window` at a time; every window
    but the last holds exactly `window` samples.

    Raises:
        AudioDecodeError: missing, empty, truncated or non-audio input (while iterating).
    """
    samples = _Rewindow(window)
    for piece in read_pieces(item):
        for whole in samples.add(piece):
            check_sound(item, whole)
            yield whole
    tail = samples.rest()
    if tail.size:
        check_sound(item, tail)
        yield tail
    elif samples.total == 0:
        raise AudioDecodeError(item.item_id, f"{item.source} holds no audio samples")


class _Rewindow:
    """Re-cuts pieces of any size into windows of a fixed size."""

    def __init__(self, window: int) -> None:
        self._window = window
        self._held: list[np.ndarray] = []
        self._held_size = 0
        self.total = 0

    def add(self, piece: np.ndarray) -> Iterator[np.ndarray]:
        self.total += piece.size
        while piece.size:
            take = min(piece.size, self._window - self._held_size)
            self._held.append(piece[:take])
            self._held_size += take
            piece = piece[take:]
            if self._held_size == self._window:
                yield self.rest()

    def rest(self) -> np.ndarray:
        held = self._held
        self._held, self._held_size = [], 0
        if not held:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(held) if len(held) > 1 else np.ascontiguousarray(held[0])


class SampleCutter:
    """Cuts stretches out of windowed audio, in order, holding about one window at a time."""

    def __init__(self, windows: Iterator[np.ndarray]) -> None:
        self._windows = windows
        self._held = np.zeros(0, dtype=np.float32)
        self._held_from = 0  # sample position of `_held[0]`

    def cut(self, start: int, end: int) -> np.ndarray:
        """Samples `start`..`end` (fewer where the audio ends first); `start` must not go back
        before the window of the previous cut."""
        if start < self._held_from:
            raise ValueError(f"cut at sample {start} goes back before {self._held_from}")
        pieces: list[np.ndarray] = []
        position = start
        while True:
            held_end = self._held_from + self._held.size
            low, high = position - self._held_from, min(end, held_end) - self._held_from
            if 0 <= low < high:
                pieces.append(self._held[low:high])
                position = self._held_from + high
            if position >= end:
                break
            following = next(self._windows, None)
            if following is None:
                break
            self._held, self._held_from = following, held_end
        if not pieces:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
