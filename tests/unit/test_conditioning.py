"""Which text prompts a conditioned file's next chunk (`engine.decode.conditioning`), with the real
tiny.en tokenizer (read from the model folder, no model loaded): the text so far, but nothing of
a chunk that needed a high-temperature fallback or was decoded weakly."""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import DecodeConfig
from engine.decode.conditioning import PreviousText
from engine.decode.vocabulary import Vocabulary
from engine.types import (
    AudioItem,
    Chunk,
    ChunkResult,
    PreparedItem,
    Prompt,
    Segment,
    SpeechSpan,
)


@pytest.fixture(scope="module")
def vocabulary(model_path) -> Vocabulary:
    return Vocabulary.from_folder(model_path, multilingual=False)


def prepared(chunks: int) -> PreparedItem:
    features = np.zeros((80, 3000), np.float32)
    return PreparedItem(AudioItem("a"), 30.0 * chunks, 30.0 * chunks, tuple(
        Chunk("a", k, (SpeechSpan(30.0 * k, 30.0 * k + 30),), features) for k in range(chunks)))


def said(chunk: Chunk, text: str, logprob: float = -0.2, no_speech: float = 0.01,
         **kwargs) -> ChunkResult:
    return ChunkResult(chunk, (Segment(chunk.spans[0].start_s, chunk.spans[0].end_s, text,
                                       logprob, no_speech, 1.2),), **kwargs)


def previous_text(vocabulary, request) -> str:
    return vocabulary.decode(request.prompt.previous).strip()


def test_a_chunk_after_a_high_temperature_fallback_prompts_nothing_after_it(vocabulary) -> None:
    """faster-whisper's prompt_reset_on_temperature: neither the chunk decoded at a high
    temperature nor anything before it prompts the chunks that follow."""
    item = prepared(4)
    conditioned = PreviousText(vocabulary, DecodeConfig())
    [first] = conditioned.first(item, "en", "transcribe", None)
    second = conditioned.follow(said(first.chunk, "The first sentence."))
    assert previous_text(vocabulary, second) == "The first sentence."
    third = conditioned.follow(said(second.chunk, "Thank you very much.", temperature=0.8))
    assert third.prompt.previous == ()  # no previous text at all
    fourth = conditioned.follow(said(third.chunk, "A third one."))
    assert previous_text(vocabulary, fourth) == "A third one."


@pytest.mark.parametrize("weak", [dict(logprob=-0.7), dict(no_speech=0.8)],
                         ids=["improbable", "likely-no-speech"])
def test_a_weakly_decoded_chunk_prompts_nothing_after_it(vocabulary, weak) -> None:
    """Noisy speech decodes weakly (an average log-probability under -0.5, or a no-speech
    probability over 0.6, without a fallback): its text resets the prompt as a high-temperature
    fallback does; switching the rule off keeps it."""
    item = prepared(3)
    conditioned = PreviousText(vocabulary, DecodeConfig())
    [first] = conditioned.first(item, "en", "transcribe", None)
    second = conditioned.follow(said(first.chunk, "Thank you very much.", **weak))
    assert second.prompt.previous == ()
    third = conditioned.follow(said(second.chunk, "A clear sentence."))
    assert previous_text(vocabulary, third) == "A clear sentence."

    unchecked = DecodeConfig(prompt_reset_on_logprob=None, no_speech_threshold=None)
    kept = PreviousText(vocabulary, unchecked)
    [first] = kept.first(item, "en", "transcribe", None)
    second = kept.follow(said(first.chunk, "Thank you very much.", **weak))
    assert previous_text(vocabulary, second) == "Thank you very much."


def test_a_prompt_becomes_tokens_in_one_place(vocabulary) -> None:
    """Previous text after sot_prev (its newest 223 tokens), then the start of transcript, then
    no-timestamps unless it decodes with timestamp tokens; an initial prompt keeps its first
    223 tokens and is never trimmed."""
    tokenizer = vocabulary.tokenizer()
    start = list(tokenizer.sot_sequence)
    assert vocabulary.tokens(Prompt("en", "transcribe")) == [*start, tokenizer.no_timestamps]
    long = tuple(range(1000, 1300))
    after = Prompt.after("en", "transcribe", long, timestamps=True)
    assert after.previous == long[-223:] and after.trimmable == 223
    assert vocabulary.tokens(after) == [tokenizer.sot_prev, *long[-223:], *start]
    initial = vocabulary.initial_prompt("en", "transcribe", "word " * 300, timestamps=False)
    assert len(initial.previous) == 223 and initial.trimmable == 0
    assert vocabulary.decode(initial.previous).split()[:2] == ["word", "word"]
    assert vocabulary.initial_prompt("en", "transcribe", None, True) == Prompt(
        "en", "transcribe", timestamps=True)


def test_trimmed_prompts_keep_their_newest_tokens_and_line_up(vocabulary) -> None:
    """Prompts that one model call takes together have their start of transcript at one
    position once trimmed (`sot_position`)."""
    a = Prompt.after("en", "transcribe", (1, 2, 3, 4, 5), False)
    b = Prompt.after("en", "transcribe", (7, 8), False)
    assert a.sot_position == b.sot_position != Prompt("en", "transcribe").sot_position
    assert a.trimmed(2).previous == (4, 5) and b.trimmed(2) is b
    assert len(vocabulary.tokens(a.trimmed(2))) == len(vocabulary.tokens(b))
