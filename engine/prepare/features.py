"""Log-mel features of one chunk, padded or trimmed to the encoder's 3000 frames."""

from __future__ import annotations

import numpy as np

from engine.types import WINDOW_FRAMES

FRAMES_PER_WINDOW = WINDOW_FRAMES


class FeatureComputer:
    """Whisper log-mel spectrogram with the model's number of mel bins (80 or 128)."""

    def __init__(self, n_mels: int) -> None:
        from faster_whisper.feature_extractor import FeatureExtractor

        self.n_mels = n_mels
        self._extractor = FeatureExtractor(feature_size=n_mels)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        from faster_whisper.audio import pad_or_trim

        mel = self._extractor(samples)[..., :-1]
        return np.ascontiguousarray(pad_or_trim(mel, FRAMES_PER_WINDOW), dtype=np.float32)
