"""Temperature fallback as pure functions (`engine.decode.fallback`): which decodes are decoded
again, which attempt is kept, and the best hypothesis of a generation (real tiny.en vocabulary,
no model loaded)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import DecodeConfig
from engine.decode.fallback import best_of, better, is_silent, needs_fallback
from engine.decode.model import Generated
from engine.decode.vocabulary import Vocabulary
from engine.types import Chunk, ChunkRequest, Decoded, Prompt, SpeechSpan

REQUEST = ChunkRequest(Chunk("a", 0, (SpeechSpan(0.0, 5.0),), np.zeros((80, 3000), np.float32)),
                       Prompt("en", "transcribe"))


def decoded(logprob: float = -0.3, no_speech: float = 0.1, ratio: float = 1.5,
            temperature: float = 0.0) -> Decoded:
    return Decoded(REQUEST, (1, 2), logprob, no_speech, temperature, ratio, None)


def test_repetitive_or_improbable_text_is_decoded_again_unless_it_is_silence() -> None:
    config = DecodeConfig()
    assert not needs_fallback(decoded(), config)
    assert needs_fallback(decoded(ratio=3.0), config)  # over 2.4: a loop
    assert needs_fallback(decoded(logprob=-1.5), config)  # improbable
    silent = decoded(logprob=-1.5, no_speech=0.9)
    assert not needs_fallback(silent, config) and is_silent(silent, config)
    assert not needs_fallback(decoded(ratio=3.0), DecodeConfig(compression_ratio_threshold=None))


def test_the_kept_attempt_is_under_the_threshold_then_the_most_probable() -> None:
    config = DecodeConfig()
    looping, weak = decoded(logprob=-0.1, ratio=3.0), decoded(logprob=-0.9, temperature=0.2)
    assert better(looping, weak, config) is weak
    stronger = decoded(logprob=-0.5, temperature=0.4)
    assert better(weak, stronger, config) is stronger
    assert better(stronger, weak, config) is stronger


def test_the_best_hypothesis_is_kept_with_its_measures(model_path) -> None:
    vocabulary = Vocabulary.from_folder(model_path, multilingual=False)
    words = vocabulary.encode("A gold ring will please most any girl.")
    generated = Generated((words[:3], words), (-0.9, -0.2), 0.05)
    d = best_of(REQUEST, generated, 0.4, None, DecodeConfig(), vocabulary)
    assert d.tokens == words and d.temperature == 0.4 and d.no_speech_prob == 0.05
    assert d.avg_logprob == pytest.approx(-0.2 * len(words) / (len(words) + 1))
    assert 0.5 < d.compression_ratio < 2.4 and d.words is None
