"""The CPU stage for one item: decode -> VAD -> chunk plan -> features.

Runs in the decode worker processes. Each worker builds one `Preparer` (VAD session, mel filters)
and reuses it for every item it receives.

Files longer than `stream_above_s` are read in windows, twice (once for VAD, once for the chunks'
samples), so that the worker holds about one window of audio instead of the whole recording; with a
`spill_dir`, their chunks' features (but the first) go to a temporary file that the main process
reads when it forms a batch (`Chunk.loaded`), so that neither process holds all of them.

With `features_on_device` (the torch encoder on CUDA) a chunk carries its samples instead
(`DeviceMel`, spilled the same way), and the model's process computes the log-mel on the GPU.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator

import numpy as np

from engine.config import VadConfig
from engine.errors import ItemFailure
from engine.failure_kind import failure_kind
from engine.prepare.audio import SAMPLE_RATE_HZ, decode
from engine.prepare.chunking import plan_chunks, voiced_in_chunk
from engine.prepare.features import FeatureComputer
from engine.prepare.vad import Speech, SpeechDetector, whole_windows
from engine.prepare.windows import SampleCutter, decode_windows, probe_duration_s
from engine.types import (
    AudioItem,
    Chunk,
    DeviceMel,
    FeatureFile,
    ItemError,
    PreparedItem,
    SpeechSpan,
    SpilledFeatures,
)

STREAM_ABOVE_S = 600.0  # 10 min: 38 MB of samples and 20 MB of features held whole


class Preparer:
    """Turns AudioItems into PreparedItems (or ItemErrors)."""

    def __init__(self, vad: VadConfig, n_mels: int, spill_dir: str | None = None,
                 stream_above_s: float | None = STREAM_ABOVE_S,
                 features_on_device: bool = False) -> None:
        self._detector = SpeechDetector(vad, SAMPLE_RATE_HZ)
        self._features = FeatureComputer(n_mels)
        self._n_mels = n_mels
        self._spill_dir = spill_dir
        self._stream_above_s = stream_above_s
        self._on_device = features_on_device

    def _data(self, samples: np.ndarray) -> np.ndarray:
        """What a chunk ships: its log-mel, or its own copy of its samples for the device's."""
        if self._on_device:
            return np.array(samples, dtype=np.float32)  # not a view of the whole file
        return self._features(samples)

    def _features_of(self, data: np.ndarray) -> np.ndarray | DeviceMel:
        return DeviceMel.of(data) if self._on_device else data

    def __call__(self, item: AudioItem) -> PreparedItem | ItemError:
        try:
            return self._prepare(item)
        except ItemFailure as e:
            return ItemError(item, e.stage, type(e).__name__, str(e), failure_kind(e))
        except Exception as e:  # an unexpected failure still only costs this item
            return ItemError(item, "prepare", type(e).__name__, f"{item.source}: {e}",
                             failure_kind(e))

    def _prepare(self, item: AudioItem) -> PreparedItem:
        started = time.perf_counter()
        if self._stream_above_s is not None:
            length_s = probe_duration_s(item)
            if length_s is not None and length_s > self._stream_above_s:
                return self._prepare_windowed(item, started)
        samples = decode(item)
        duration_s = samples.size / SAMPLE_RATE_HZ
        speech = self._detector.find(whole_windows(samples))
        chunks = tuple(
            Chunk(item.item_id, index, _to_source(group, item),
                  self._features_of(self._data(_cut(samples, group))), None,
                  _voiced(group, speech))
            for index, group in enumerate(plan_chunks(speech.spans))
        )
        speech_s = sum(chunk.duration_s for chunk in chunks)
        return PreparedItem(item, duration_s, speech_s, chunks,
                            prepare_s=time.perf_counter() - started)

    def _prepare_windowed(self, item: AudioItem, started: float) -> PreparedItem:
        speech = self._detector.find(decode_windows(item))
        groups = plan_chunks(speech.spans)
        spill = _Spill(self._spill_dir) if self._spill_dir and len(groups) > 1 else None
        try:
            chunks = tuple(self._windowed_chunks(item, groups, speech, spill))
        except BaseException:
            if spill is not None:
                spill.discard()
            raise
        if spill is not None:
            spill.close()
        speech_s = sum(chunk.duration_s for chunk in chunks)
        return PreparedItem(item, speech.total_samples / SAMPLE_RATE_HZ, speech_s, chunks,
                            prepare_s=time.perf_counter() - started)

    def _windowed_chunks(self, item: AudioItem, groups: list[tuple[SpeechSpan, ...]],
                         speech: Speech, spill: _Spill | None) -> Iterator[Chunk]:
        samples = SampleCutter(decode_windows(item))
        for index, group in enumerate(groups):
            pieces = [samples.cut(int(s.start_s * SAMPLE_RATE_HZ), int(s.end_s * SAMPLE_RATE_HZ))
                      for s in group]
            data = self._data(np.concatenate(pieces) if len(pieces) > 1 else pieces[0])
            # the first chunk stays in memory: language detection and packing read it early
            voiced = _voiced(group, speech)
            if spill is None or index == 0:
                yield Chunk(item.item_id, index, _to_source(group, item),
                            self._features_of(data), None, voiced)
            else:
                yield Chunk(item.item_id, index, _to_source(group, item),
                            np.zeros((self._n_mels, 0), dtype=np.float32), spill.write(data),
                            voiced)


class _Spill:
    """Writes one item's chunk features (or samples) to a new file in `folder`."""

    def __init__(self, folder: str) -> None:
        fd, path = tempfile.mkstemp(dir=folder, prefix="features-", suffix=".f32")
        self._out = os.fdopen(fd, "wb")
        self._file = FeatureFile(path)
        self._offset = 0

    def write(self, features: np.ndarray) -> SpilledFeatures:
        data = np.ascontiguousarray(features, dtype=np.float32)
        self._out.write(data.data.cast("B"))
        spilled = SpilledFeatures(self._file, self._offset, data.shape)
        self._offset += data.nbytes
        return spilled

    def close(self) -> None:
        self._out.close()

    def discard(self) -> None:
        self._out.close()
        os.unlink(self._file.path)


def _cut(samples: np.ndarray, spans: tuple[SpeechSpan, ...]) -> np.ndarray:
    pieces = [
        samples[int(s.start_s * SAMPLE_RATE_HZ): int(s.end_s * SAMPLE_RATE_HZ)] for s in spans
    ]
    return np.concatenate(pieces) if len(pieces) > 1 else pieces[0]


def _voiced(group: tuple[SpeechSpan, ...], speech: Speech) -> tuple[SpeechSpan, ...] | None:
    return None if speech.voiced is None else voiced_in_chunk(group, speech.voiced)


def _to_source(spans: tuple[SpeechSpan, ...], item: AudioItem) -> tuple[SpeechSpan, ...]:
    """Spans are found in the decoded region; shift them to times in the source file."""
    offset = item.start_s or 0.0
    if offset == 0.0:
        return spans
    return tuple(SpeechSpan(s.start_s + offset, s.end_s + offset) for s in spans)
