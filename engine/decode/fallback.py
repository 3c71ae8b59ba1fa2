"""Temperature fallback, as faster-whisper's `transcribe` decides it, over typed values.

A decode whose text looks too repetitive or too improbable (and is not silence) is decoded again at
the next temperature; of a chunk's attempts, the best is kept (`better`). The runner calls the
model; these functions only judge what came back.
"""

from __future__ import annotations

import numpy as np

from engine.config import DecodeConfig
from engine.decode.assemble import compression_ratio, is_silence
from engine.decode.model import Generated
from engine.decode.vocabulary import Vocabulary
from engine.types import ChunkRequest, Decoded


def best_of(request: ChunkRequest, generated: Generated, temperature: float, encoded: object,
            config: DecodeConfig, vocabulary: Vocabulary) -> Decoded:
    """The best hypothesis of one generation, with faster-whisper's quality measures."""
    best = int(np.argmax(generated.scores)) if len(generated.scores) > 1 else 0
    tokens = generated.sequences[best]
    cum_logprob = generated.scores[best] * (len(tokens) ** config.length_penalty)
    text = vocabulary.tokenizer(request.language, request.task).decode(list(tokens)).strip()
    return Decoded(request, tuple(tokens), cum_logprob / (len(tokens) + 1),
                   generated.no_speech_prob, temperature, compression_ratio(text), encoded)


def too_repetitive(d: Decoded, config: DecodeConfig) -> bool:
    """faster-whisper's repetition rule: a compression ratio over the threshold."""
    limit = config.compression_ratio_threshold
    return limit is not None and d.compression_ratio > limit


def is_silent(d: Decoded, config: DecodeConfig) -> bool:
    """faster-whisper's rule for skipping a window (`assemble.is_silence`)."""
    return is_silence(d, config.no_speech_threshold, config.log_prob_threshold)


def needs_fallback(d: Decoded, config: DecodeConfig) -> bool:
    """faster-whisper's rule: repetitive or improbable text, unless it is silence."""
    improbable = (config.log_prob_threshold is not None
                  and d.avg_logprob < config.log_prob_threshold)
    silent = (config.no_speech_threshold is not None and improbable
              and d.no_speech_prob > config.no_speech_threshold)
    return (too_repetitive(d, config) or improbable) and not silent


def better(old: Decoded, new: Decoded, config: DecodeConfig) -> Decoded:
    """Prefer an attempt under the compression threshold, then the higher log-probability."""

    def rank(d: Decoded) -> tuple[bool, float]:
        return (not too_repetitive(d, config), d.avg_logprob)

    return new if rank(new) > rank(old) else old
