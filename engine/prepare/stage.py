"""The CPU stage for one item: decode -> VAD -> chunk plan -> features.

Runs in the decode worker processes. Each worker builds one `Preparer` (VAD session, mel filters)
and reuses it for every item it receives.
"""

from __future__ import annotations

import time

import numpy as np

from engine.config import VadConfig
from engine.errors import ItemFailure
from engine.prepare.audio import SAMPLE_RATE_HZ, decode
from engine.prepare.chunking import plan_chunks
from engine.prepare.features import FeatureComputer
from engine.types import AudioItem, Chunk, ItemError, PreparedItem, SpeechSpan


class Preparer:
    """Turns AudioItems into PreparedItems (or ItemErrors)."""

    def __init__(self, vad: VadConfig, n_mels: int) -> None:
        from engine.prepare.vad import SpeechDetector

        self._detector = SpeechDetector(vad, SAMPLE_RATE_HZ)
        self._features = FeatureComputer(n_mels)

    def __call__(self, item: AudioItem) -> PreparedItem | ItemError:
        try:
            return self._prepare(item)
        except ItemFailure as e:
            return ItemError(item, e.stage, type(e).__name__, str(e))
        except Exception as e:  # an unexpected failure still only costs this item
            return ItemError(item, "prepare", type(e).__name__, f"{item.source}: {e}")

    def _prepare(self, item: AudioItem) -> PreparedItem:
        started = time.perf_counter()
        samples = decode(item)
        duration_s = samples.size / SAMPLE_RATE_HZ
        spans = self._detector.detect(samples)
        chunks = tuple(
            Chunk(item.item_id, index, _to_source(group, item),
                  self._features(_cut(samples, group)))
            for index, group in enumerate(plan_chunks(spans))
        )
        speech_s = sum(chunk.duration_s for chunk in chunks)
        return PreparedItem(item, duration_s, speech_s, chunks,
                            prepare_s=time.perf_counter() - started)


def _cut(samples: np.ndarray, spans: tuple[SpeechSpan, ...]) -> np.ndarray:
    pieces = [
        samples[int(s.start_s * SAMPLE_RATE_HZ): int(s.end_s * SAMPLE_RATE_HZ)] for s in spans
    ]
    return np.concatenate(pieces) if len(pieces) > 1 else pieces[0]


def _to_source(spans: tuple[SpeechSpan, ...], item: AudioItem) -> tuple[SpeechSpan, ...]:
    """Spans are found in the decoded region; shift them to times in the source file."""
    offset = item.start_s or 0.0
    if offset == 0.0:
        return spans
    return tuple(SpeechSpan(s.start_s + offset, s.end_s + offset) for s in spans)
