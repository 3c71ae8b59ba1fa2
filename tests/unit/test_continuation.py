"""Speech the decoder left out (issue 14): where a chunk is decoded again, how the first decode is
cut, and the voiced frames VAD hands to each chunk (synthetic words; real VAD on real clips)."""

from __future__ import annotations

from dataclasses import replace

import faster_whisper.vad as fw_vad
import numpy as np
import pytest

from engine.config import DecodeConfig, VadConfig
from engine.decode.continuation import (
    continuation,
    cut_before,
    hears_more,
    left_out,
    left_out_s,
    uncovered_s,
    without_repeated_start,
)
from engine.decode.words import Word
from engine.prepare.audio import decode
from engine.prepare.chunking import plan_chunks, voiced_in_chunk
from engine.prepare.vad import SpeechDetector, whole_windows
from engine.types import AudioItem, Chunk, ChunkRequest, Decoded, PackedChunk, Prompt, SpeechSpan

EOT, BEGIN = 50257, 50364  # tiny.en's end of text and first timestamp token


def word(start_s: float, end_s: float, token: int = 1) -> Word:
    return Word(" w", (token,), start_s, end_s, 0.9)


def voiced(*pairs: tuple[float, float]) -> list[SpeechSpan]:
    return [SpeechSpan(a, b) for a, b in pairs]


def test_voiced_speech_after_the_last_word_is_decoded_again_from_its_end() -> None:
    words = [word(0.5, 1.0), word(1.0, 1.6)]
    assert left_out_s(words, voiced((0.4, 1.7), (4.0, 6.0)), 0.8, 1.0) == 1.6


def test_a_silent_tail_is_not_decoded_again() -> None:
    """Regression: the tail of a short clip ("Firefox", then 1.4 s of silence) was re-decoded
    whatever it held, and the model answered silence with "We'll see you next time."."""
    words = [word(0.6, 1.4)]
    assert left_out_s(words, voiced((0.66, 1.38)), 0.8, 1.0) is None


def test_short_uncovered_pieces_are_alignment_jitter() -> None:
    words = [word(0.0, 1.0), word(1.5, 2.5), word(3.0, 4.0)]
    assert left_out_s(words, voiced((0.0, 4.4)), 0.8, 1.0) is None  # 0.5 + 0.5 + 0.4 s apart
    assert uncovered_s(words, voiced((0.0, 4.4))) == pytest.approx(1.4)


def test_a_stretched_word_covers_only_its_ends_so_a_skip_inside_it_is_found() -> None:
    """Seen on the conversational long-form file: "quickly." aligned over 3.5 s of a voice the
    decoder skipped; the continuation starts where the sentence's last word plausibly ends."""
    words = [word(3.0, 4.5), Word(" quickly.", (2,), 5.3, 8.84, 0.9)]
    speech = voiced((3.0, 4.5), (5.3, 5.9), (6.5, 7.1), (7.3, 8.0))
    assert left_out_s(words, speech, 0.8, 1.0) == pytest.approx(6.0)


def test_a_stretched_word_inside_a_sentence_is_decoded_again() -> None:
    """Seen with base on the same file: "And" of "And so it begins" laid over 4 s of the skipped
    voice before it; it may belong after that speech, so the continuation starts at it."""
    words = [word(3.0, 4.5), Word(" And", (2,), 5.3, 8.84, 0.9)]
    speech = voiced((3.0, 4.5), (5.3, 5.9), (6.5, 7.1), (7.3, 8.0))
    assert left_out_s(words, speech, 0.8, 1.0) == pytest.approx(5.3)


def test_left_out_speech_at_the_chunk_start_is_not_decoded_again() -> None:
    """From there the continuation would see the same window as the first decode."""
    words = [word(2.5, 3.0)]
    assert left_out_s(words, voiced((0.2, 2.0), (2.5, 3.0)), 0.8, 1.0) is None
    assert left_out_s([], voiced((0.2, 2.0)), 0.8, 1.0) is None


def test_shorter_pieces_before_the_stretch_come_along() -> None:
    words = [word(0.0, 1.0)]
    assert left_out_s(words, voiced((0.0, 1.0), (1.4, 1.8), (2.5, 4.0)), 0.8, 1.0) == 1.0


def decoded(tokens: tuple[int, ...], words: list[Word] | None = None) -> Decoded:
    chunk = Chunk("a", 0, (SpeechSpan(0.0, 20.0),), np.zeros((80, 3000), np.float32))
    return Decoded(ChunkRequest(chunk, Prompt("en", "transcribe")), tokens, -0.2, 0.01, 0.0, 1.2,
                   None, None if words is None else tuple(words))


class Tokenizer:
    eot, timestamp_begin = EOT, BEGIN


def test_a_decode_is_cut_to_its_words_before_the_left_out_speech() -> None:
    words = [word(0.0, 1.0, 10), word(1.0, 2.0, 11), word(6.0, 7.0, 12)]
    cut = cut_before(decoded((10, 11, 12), words), 3.0, Tokenizer(), False)
    assert cut.tokens == (10, 11) and cut.words == tuple(words[:2])
    whole = cut_before(decoded((10, 11), words[:2]), 3.0, Tokenizer(), False)
    assert whole.tokens == (10, 11) and whole.words == tuple(words[:2])


def test_with_timestamp_tokens_the_cut_closes_the_open_segment_at_the_cut() -> None:
    words = [word(0.0, 1.0, 10), word(1.0, 2.0, 11), word(6.0, 7.0, 12)]
    tokens = (BEGIN, 10, 11, BEGIN + 100, BEGIN + 100, 12, BEGIN + 350)
    cut = cut_before(decoded(tokens, words), 3.0, Tokenizer(), True)
    assert cut.tokens == (BEGIN, 10, 11, BEGIN + 100, BEGIN + 100)  # closed segment kept as is
    cut = cut_before(decoded((BEGIN, 10, 11, 12, BEGIN + 350), words), 3.0, Tokenizer(), True)
    assert cut.tokens == (BEGIN, 10, 11, BEGIN + 150)


def test_voiced_frames_follow_a_chunk_of_glued_spans_and_its_tails() -> None:
    group = (SpeechSpan(10.0, 14.0), SpeechSpan(20.0, 23.0))
    found = voiced_in_chunk(group, voiced((10.5, 12.0), (13.5, 21.0), (22.0, 30.0)))
    assert found == tuple(voiced((0.5, 2.0), (3.5, 4.0), (4.0, 5.0), (6.0, 7.0)))
    chunk = Chunk("a", 0, group, np.zeros((80, 3000), np.float32), voiced=found)
    assert chunk.tail(3.0).voiced == tuple(voiced((0.5, 1.0), (1.0, 2.0), (3.0, 4.0)))
    assert Chunk("a", 0, group, chunk.features).tail(3.0).voiced is None


def test_vad_finds_faster_whispers_spans_and_voiced_frames_inside_them(clips) -> None:
    detector = SpeechDetector(VadConfig())
    options = fw_vad.VadOptions(min_silence_duration_ms=2000, speech_pad_ms=400,
                                max_speech_duration_s=30.0)
    for clip in clips:
        samples = decode(AudioItem(clip["id"], path=clip["path"]))
        speech = detector.find(whole_windows(samples))
        expected = fw_vad.get_speech_timestamps(samples, options)
        assert [(s.start_s, s.end_s) for s in speech.spans] == [
            (s["start"] / 16000, s["end"] / 16000) for s in expected]
        assert speech.voiced and speech.total_samples == samples.size
        # on these clips, every voiced stretch lies inside a padded span
        assert all(any(s.start_s <= v.start_s and v.end_s <= s.end_s for s in speech.spans)
                   for v in speech.voiced)
        chunks = plan_chunks(speech.spans)
        inside = sum(v.duration_s for g in chunks for v in voiced_in_chunk(g, speech.voiced))
        assert inside == pytest.approx(sum(v.duration_s for v in speech.voiced))


def test_without_vad_nothing_is_known_of_where_the_speech_is(clips) -> None:
    samples = decode(AudioItem(clips[0]["id"], path=clips[0]["path"]))
    speech = SpeechDetector(VadConfig(enabled=False)).find(whole_windows(samples))
    assert speech.voiced is None and speech.spans == [SpeechSpan(0.0, samples.size / 16000)]


def test_a_continuation_that_hears_the_last_word_again_drops_it() -> None:
    """Regression (lucier_room, a slow speaker): a continuation from inside the 2.5 s word
    "rhythm" began with "rhythm" again: "the exception of rhythm rhythm is destroyed"."""
    before = [Word(" of", (10,), 1.9, 2.5, 0.9), Word(" rhythm", (11, 12), 2.5, 5.0, 0.9)]
    words = [Word(" Rhythm", (13, 12), 0.0, 1.0, 0.9), Word(" is", (14,), 1.8, 2.9, 0.9)]
    tail = without_repeated_start(decoded((13, 12, 14), words), before, EOT)
    assert tail.tokens == (14,) and tail.words == tuple(words[1:])
    other = [Word(" rhythm", (11, 12), 0.0, 1.0, 0.9)]
    tail = without_repeated_start(decoded((11, 12), other), before[:1], EOT)
    assert tail.tokens == (11, 12) and tail.words == tuple(other)


def test_a_continuation_that_still_loops_after_fallback_is_not_kept() -> None:
    """A continuation over a second of noisy speech at a file's end came back as "Yeah." 40 times
    (compression ratio over 2.4 at every temperature): its words cover the voiced tail, yet the
    uncut decode is kept; the same continuation with plain text is kept."""
    features = np.zeros((80, 3000), np.float32)
    chunk = Chunk("a", 0, (SpeechSpan(0.0, 12.0),), features, voiced=voiced((0.0, 12.0)))
    tail_chunk = chunk.tail(10.0)

    def said(piece: Chunk, ratio: float, words: int) -> Decoded:
        return Decoded(ChunkRequest(piece, Prompt("en", "transcribe")), (1, 2, EOT), -0.2, 0.5,
                       1.0, ratio, None, tuple(word(0.2 * k, 0.2 * k + 0.2) for k in range(words)))

    uncut = said(chunk, 1.5, 50)
    for ratio, kept in ((1.5, True), (6.0, False)):
        assert hears_more(uncut, uncut, 10.0, said(tail_chunk, ratio, 10), DecodeConfig()) is kept


def test_voiced_speech_no_word_covers_is_decoded_again_from_the_last_covered_time() -> None:
    chunk = Chunk("a", 0, (SpeechSpan(0.0, 10.0),), np.zeros((80, 3000), np.float32),
                  voiced=tuple(voiced((0.0, 2.0), (5.0, 8.0))))
    words = (word(0.0, 1.0, 10), word(1.0, 2.0, 11))
    said = Decoded(ChunkRequest(chunk, Prompt("en", "transcribe")), (10, 11, EOT), -0.2, 0.01,
                   0.0, 1.2, None, words)
    assert left_out(said, DecodeConfig(timestamps="aligned"), Tokenizer()) == (2.0, said)
    heard = tuple(word(5.0 + k, 6.0 + k, 12 + k) for k in range(3))
    assert left_out(replace(said, words=words + heard), DecodeConfig(timestamps="aligned"),
                    Tokenizer()) is None


def test_a_plain_continuation_is_prompted_with_the_text_before_it() -> None:
    """As Whisper's sequential loop prompts its next window: the chunk's own prompt, then the
    text the cut decode kept; decoded with timestamp tokens."""
    chunk = Chunk("a", 0, (SpeechSpan(0.0, 20.0),), np.zeros((80, 3000), np.float32))
    prompt = Prompt.initial("en", "transcribe", (5, 6), timestamps=False)
    said = Decoded(ChunkRequest(chunk, prompt), (BEGIN, 10, 11, BEGIN + 100, EOT), -0.2, 0.01,
                   0.0, 1.2, None)
    request = continuation(said, 4.0, EOT)
    assert request.chunk.spans == (SpeechSpan(4.0, 20.0),)
    assert request.prompt == Prompt("en", "transcribe", (5, 6, 10, 11), 4, timestamps=True)


def test_a_packed_window_goes_on_from_a_member_start_with_its_own_prompt() -> None:
    """Regression (issue 28): `--pack` with VAD crashed where a packed window's decode stopped
    early. Its members are whole files, so the text before the stop (other files') never
    prompts the rest, which starts at the member the stop falls in."""
    features = np.zeros((80, 3000), np.float32)
    members = tuple(Chunk(item, 0, (SpeechSpan(0.0, 6.0),), features) for item in "ab")
    window = PackedChunk(members, (0.0, 8.0), features)
    prompt = Prompt("en", "transcribe", timestamps=True)
    said = Decoded(ChunkRequest(window, prompt), (BEGIN, 10, BEGIN + 450, BEGIN + 450, EOT),
                   -0.2, 0.01, 0.0, 1.2, None)
    config = DecodeConfig(timestamps="tokens")
    found = left_out(replace(said, tokens=said.tokens[:-1]), config, Tokenizer())
    assert found is not None and found[0] == 9.0
    request = continuation(said, found[0], EOT)
    assert isinstance(request.chunk, PackedChunk) and request.chunk.origin_s == 8.0
    assert request.prompt == prompt
