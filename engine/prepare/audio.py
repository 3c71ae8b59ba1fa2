"""Decode one item's audio whole, to float32 mono at 16 kHz; nothing else.

The reading itself (soundfile, then PyAV; local, remote or bytes; the region) is
`engine.prepare.reader`'s, shared with the windowed path (`windows`); this module adds what a
whole file is checked for: samples at all, and sound (not NaN, not clipped).
"""

from __future__ import annotations

import numpy as np

from engine.errors import AudioDecodeError
from engine.prepare.integrity import DamagedAudio, check_samples
from engine.prepare.reader import SAMPLE_RATE_HZ, read
from engine.types import AudioItem

__all__ = ["SAMPLE_RATE_HZ", "check_sound", "decode"]


def decode(item: AudioItem) -> np.ndarray:
    """Decode an item's audio (its `start_s`..`end_s` region when given).

    Audio already at 16 kHz is read by soundfile; everything else goes through FFmpeg's decoder
    and resampler exactly as faster-whisper's `decode_audio` does, so transcripts match it.

    Raises:
        AudioDecodeError: missing, empty, truncated, damaged or non-audio input.
        StorageReadError: a remote read that kept failing.
    """
    samples = read(item)
    if samples.size == 0:
        raise AudioDecodeError(item.item_id, f"{item.source} holds no audio samples")
    check_sound(item, samples)
    return samples


def check_sound(item: AudioItem, samples: np.ndarray) -> None:
    """Refuse samples that are NaN/Inf, far past full scale or mostly clipped.

    Raises:
        AudioDecodeError: what is wrong with the samples (permanent).
    """
    try:
        check_samples(samples)
    except DamagedAudio as e:
        raise AudioDecodeError(item.item_id, f"{item.source} {e}") from e
