"""Which text prompts a conditioned file's next chunk (`engine.decode.conditioning`), with the real
tiny.en tokenizer: the text so far, but nothing of a chunk that needed a high-temperature
fallback or was decoded weakly."""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import DecodeConfig, ModelConfig
from engine.decode.conditioning import PreviousText
from engine.types import AudioItem, Chunk, ChunkResult, PreparedItem, Segment, SpeechSpan


@pytest.fixture(scope="module")
def runner(model_path):
    from engine.decode.runner import ModelRunner

    runner = ModelRunner(ModelConfig(path=model_path, device="cpu"), DecodeConfig())
    yield runner
    runner.close()


def prepared(chunks: int) -> PreparedItem:
    features = np.zeros((80, 3000), np.float32)
    return PreparedItem(AudioItem("a"), 30.0 * chunks, 30.0 * chunks, tuple(
        Chunk("a", k, (SpeechSpan(30.0 * k, 30.0 * k + 30),), features) for k in range(chunks)))


def said(chunk: Chunk, text: str, logprob: float = -0.2, no_speech: float = 0.01,
         **kwargs) -> ChunkResult:
    return ChunkResult(chunk, (Segment(chunk.spans[0].start_s, chunk.spans[0].end_s, text,
                                       logprob, no_speech, 1.2),), **kwargs)


def previous_text(runner, request) -> str:
    tokenizer = runner.tokenizer()
    end = request.prompt_tokens.index(tokenizer.sot)
    return tokenizer.decode(list(request.prompt_tokens[1:end])).strip()


def test_a_chunk_after_a_high_temperature_fallback_prompts_nothing_after_it(runner) -> None:
    """faster-whisper's prompt_reset_on_temperature: neither the chunk decoded at a high
    temperature nor anything before it prompts the chunks that follow."""
    item = prepared(4)
    conditioned = PreviousText(runner, DecodeConfig())
    [first] = conditioned.first(item, "en", "transcribe", None)
    second = conditioned.follow(said(first.chunk, "The first sentence."))
    assert previous_text(runner, second) == "The first sentence."
    third = conditioned.follow(said(second.chunk, "Thank you very much.", temperature=0.8))
    assert third.prompt_tokens[0] != runner.tokenizer().sot_prev  # no previous text at all
    fourth = conditioned.follow(said(third.chunk, "A third one."))
    assert previous_text(runner, fourth) == "A third one."


@pytest.mark.parametrize("weak", [dict(logprob=-0.7), dict(no_speech=0.8)],
                         ids=["improbable", "likely-no-speech"])
def test_a_weakly_decoded_chunk_prompts_nothing_after_it(runner, weak) -> None:
    """Noisy speech decodes weakly (an average log-probability under -0.5, or a no-speech
    probability over 0.6, without a fallback): its text resets the prompt as a high-temperature
    fallback does; switching the rule off keeps it."""
    item = prepared(3)
    conditioned = PreviousText(runner, DecodeConfig())
    [first] = conditioned.first(item, "en", "transcribe", None)
    second = conditioned.follow(said(first.chunk, "Thank you very much.", **weak))
    assert second.prompt_tokens[0] != runner.tokenizer().sot_prev
    third = conditioned.follow(said(second.chunk, "A clear sentence."))
    assert previous_text(runner, third) == "A clear sentence."

    unchecked = DecodeConfig(prompt_reset_on_logprob=None, no_speech_threshold=None)
    kept = PreviousText(runner, unchecked)
    [first] = kept.first(item, "en", "transcribe", None)
    second = kept.follow(said(first.chunk, "Thank you very much.", **weak))
    assert previous_text(runner, second) == "Thank you very much."
