"""Long files decoded in fixed windows, so that a worker never holds a whole recording.

`decode_windows` yields the same samples as `audio.decode` (same decoders, same conversion, same
region cut), `WINDOW_SAMPLES` at a time; `probe_duration_s` reads only a file's header, to choose
between the two. Windows are a whole number of the VAD model's 10,000-frame batches, so that the
speech probabilities computed window by window equal those of the whole file (see `vad`).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np

from engine.errors import AudioDecodeError
from engine.prepare.audio import (
    _EXACT_LENGTH_FORMATS,
    SAMPLE_RATE_HZ,
    TruncatedAudio,
    _check_wav_complete,
    _describe,
    check_local_file,
    check_sound,
    check_stream,
)
from engine.types import AudioItem

WINDOW_SAMPLES = 10000 * 512  # 320 s at 16 kHz: the VAD model's batch of 10,000 frames


def probe_duration_s(item: AudioItem) -> float | None:
    """The length of the item's audio (its region when given) from the file's header; None when
    the header does not say or the file cannot be opened (the whole-file path reports why)."""
    try:
        duration_s = _header_duration_s(_open(item))
    except Exception:  # noqa: BLE001 - the whole-file path reports why it cannot read
        return None
    if duration_s is None:
        return None
    end_s = duration_s if item.end_s is None else min(item.end_s, duration_s)
    return max(0.0, end_s - (item.start_s or 0.0))


def _header_duration_s(source: BinaryIO | str) -> float | None:
    import soundfile

    try:
        info = soundfile.info(source)
        return float(info.frames) / float(info.samplerate)
    except Exception:  # noqa: BLE001 - not libsndfile's format: ask FFmpeg
        pass
    import av

    if not isinstance(source, str):
        source.seek(0)
    with av.open(source, mode="r", metadata_errors="ignore") as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        return container.duration / 1e6 if container.duration else None


def decode_windows(item: AudioItem, window: int = WINDOW_SAMPLES) -> Iterator[np.ndarray]:
    """The item's samples (float32 mono, 16 kHz, its region), `window` at a time; every window
    but the last holds exactly `window` samples.

    Raises:
        AudioDecodeError: missing, empty, truncated or non-audio input (while iterating).
    """
    _check_stream(item)
    samples = _Rewindow(window)
    for piece in _region(item, _decoded_pieces(item)):
        for whole in samples.add(piece):
            check_sound(item, whole)
            yield whole
    tail = samples.rest()
    if tail.size:
        check_sound(item, tail)
        yield tail
    elif samples.total == 0:
        raise AudioDecodeError(item.item_id, f"{item.source} holds no audio samples")


def _check_stream(item: AudioItem) -> None:
    source = _open(item)
    if isinstance(source, str):
        with open(source, "rb") as f:
            check_stream(item, f)
    else:
        check_stream(item, source)


def _open(item: AudioItem) -> BinaryIO | str:
    if item.audio_bytes is not None:
        if len(item.audio_bytes) == 0:
            raise AudioDecodeError(item.item_id, f"{item.source} is empty (0 bytes)")
        return io.BytesIO(item.audio_bytes)
    if item.path is None:
        raise AudioDecodeError(item.item_id, f"row {item.item_id} has neither a path nor bytes")
    check_local_file(item, item.path)
    return item.path


def _decoded_pieces(item: AudioItem) -> Iterator[np.ndarray]:
    """Decoded samples in pieces of any size: libsndfile when it reads the file at 16 kHz
    exactly, FFmpeg otherwise (the same choice and conversion as `audio.decode`)."""
    source = _open(item)
    try:
        pieces = _soundfile_pieces(source)
    except TruncatedAudio as e:
        raise AudioDecodeError(item.item_id, f"cannot decode {item.source}: {e}") from e
    except Exception:  # noqa: BLE001 - libsndfile does not know the format: FFmpeg decides
        pieces = None
    if pieces is not None:
        try:
            yield from pieces
        except TruncatedAudio as e:
            raise AudioDecodeError(item.item_id, f"cannot decode {item.source}: {e}") from e
        return
    if not isinstance(source, str):
        source.seek(0)
    try:
        yield from _pyav_pieces(source)
    except Exception as e:
        raise AudioDecodeError(
            item.item_id, f"cannot decode {item.source}: {_describe(e)} "
            "(not an audio file, or corrupt)"
        ) from e


def _soundfile_pieces(source: BinaryIO | str) -> Iterator[np.ndarray] | None:
    import soundfile

    f = soundfile.SoundFile(source)
    try:
        _check_wav_complete(f.extra_info)
    except TruncatedAudio:
        f.close()
        raise
    if f.samplerate != SAMPLE_RATE_HZ or f.format not in _EXACT_LENGTH_FORMATS:
        f.close()
        return None
    return _soundfile_blocks(f)


def _soundfile_blocks(f: Any) -> Iterator[np.ndarray]:
    with f:
        expected, found = f.frames, 0
        for block in f.blocks(blocksize=WINDOW_SAMPLES, dtype="float32", always_2d=True):
            found += block.shape[0]
            yield block.mean(axis=1, dtype=np.float32)
    if found < expected:
        raise TruncatedAudio(f"truncated: header promises {expected} frames, found {found}")


def _pyav_pieces(source: BinaryIO | str) -> Iterator[np.ndarray]:
    import av

    with av.open(source, mode="r", metadata_errors="ignore") as container:
        if not container.streams.audio:
            raise ValueError("no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE_HZ)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                yield out.to_ndarray().reshape(-1).astype(np.float32) / 32768.0
        for out in resampler.resample(None):
            yield out.to_ndarray().reshape(-1).astype(np.float32) / 32768.0


def _region(item: AudioItem, pieces: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """The pieces cut to the item's `start_s`..`end_s` region (all of them without one)."""
    if item.start_s is None and item.end_s is None:
        yield from pieces
        return
    start = int(round((item.start_s or 0.0) * SAMPLE_RATE_HZ))
    end = None if item.end_s is None else int(round(item.end_s * SAMPLE_RATE_HZ))
    if start < 0 or (end is not None and end <= start):
        raise AudioDecodeError(
            item.item_id, f"{item.source}: region start_s={item.start_s} end_s={item.end_s} "
            "is empty; start_s must be >= 0 and below end_s"
        )
    position = 0
    for piece in pieces:
        first, last = position, position + piece.size
        position = last
        if last <= start:
            continue
        yield piece[max(0, start - first): piece.size if end is None else max(0, end - first)]
        if end is not None and last >= end:
            return


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
