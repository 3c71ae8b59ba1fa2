"""Voice activity detection: speech spans of a waveform, with faster-whisper's Silero model.

The Silero ONNX model ships inside the faster-whisper wheel; nothing is downloaded.
"""

from __future__ import annotations

import numpy as np

from engine.config import VadConfig
from engine.types import SpeechSpan

MAX_SPAN_S = 30.0


class SpeechDetector:
    """Finds speech in 16 kHz audio. Build one per worker process (it holds an ONNX session)."""

    def __init__(self, config: VadConfig, sample_rate_hz: int = 16000) -> None:
        from faster_whisper.vad import VadOptions, get_vad_model

        self._config = config
        self._rate = sample_rate_hz
        self._options = VadOptions(
            threshold=config.threshold,
            min_speech_duration_ms=config.min_speech_duration_ms,
            min_silence_duration_ms=config.min_silence_duration_ms,
            speech_pad_ms=config.speech_pad_ms,
            max_speech_duration_s=MAX_SPAN_S,
        )
        get_vad_model()  # load the ONNX session now, not on the first item

    def detect(self, samples: np.ndarray) -> list[SpeechSpan]:
        """Speech spans in seconds; the whole audio when VAD is disabled."""
        if not self._config.enabled:
            return [SpeechSpan(0.0, samples.size / self._rate)]
        from faster_whisper.vad import get_speech_timestamps

        stamps = get_speech_timestamps(samples, self._options, sampling_rate=self._rate)
        return [SpeechSpan(s["start"] / self._rate, s["end"] / self._rate) for s in stamps]
