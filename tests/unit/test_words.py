"""Word timings from CTranslate2's alignment pairs, and segments cut from them."""

import pytest

from engine.decode.words import (
    MAX_SEGMENT_S,
    MAX_WORD_S,
    PAUSE_S,
    Word,
    cut_segments,
    from_alignment,
)

EOT = 99
SPELLING = {1: " the", 2: " cat", 3: ".", 4: " (", 5: "sat", 6: ")", 7: " down", 8: ","}


class Tokenizer:
    """One token per word, as Whisper's tokenizer splits English text into words."""

    eot = EOT

    def split_to_word_tokens(self, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
        return [SPELLING.get(t, "") for t in tokens], [[t] for t in tokens]


def aligned(tokens: list[int], starts_s: list[float], end_s: float) -> list[Word]:
    """Alignment pairs (text index, time index) that enter token i at starts_s[i]."""
    frames = [round(s * 50) for s in [*starts_s, end_s]]
    pairs = [(i, f) for i, f in enumerate(frames)]
    return from_alignment(Tokenizer(), tokens, pairs, [0.5] * len(tokens), duration_s=30.0)


def test_words_start_where_the_alignment_enters_their_first_token() -> None:
    words = aligned([1, 2, 7], [0.2, 0.6, 1.0], 1.4)
    assert [(w.text, w.start_s, w.end_s) for w in words] == [
        (" the", 0.2, 0.6), (" cat", 0.6, 1.0), (" down", 1.0, 1.4)]
    assert all(w.probability == pytest.approx(0.5) for w in words)


def test_punctuation_joins_its_neighbour_word() -> None:
    words = aligned([1, 2, 8, 4, 5, 6, 3], [0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 0.9], 1.0)
    assert [w.text for w in words] == [" the", " cat,", " (sat)."]
    assert [w.tokens for w in words] == [(1,), (2, 8), (4, 5, 6, 3)]
    assert (words[2].start_s, words[2].end_s) == (0.5, 1.0)


def test_a_first_word_stretched_over_the_silence_before_it_is_cut_back() -> None:
    # the chunk's first word and the first word after a full stop both "start" seconds early
    words = aligned([1, 2, 3, 7, 1], [0.0, 3.5, 3.9, 4.0, 7.5], 7.8)
    assert [w.text for w in words] == [" the", " cat.", " down", " the"]
    assert (words[0].start_s, words[0].end_s) == (3.5 - MAX_WORD_S, 3.5)
    assert (words[1].start_s, words[1].end_s) == (3.5, 4.0)
    assert (words[2].start_s, words[2].end_s) == (7.5 - MAX_WORD_S, 7.5)
    assert (words[3].start_s, words[3].end_s) == (7.5, 7.8)


def word(text: str, start_s: float, end_s: float) -> Word:
    return Word(text, (0,), start_s, end_s, 1.0)


def texts(segments: list[list[Word]]) -> list[str]:
    return ["".join(w.text for w in s) for s in segments]


def test_segments_end_at_sentence_ends_and_pauses() -> None:
    after = 1.3 + PAUSE_S + 0.1
    words = [word(" One", 0.0, 0.4), word(" two.", 0.4, 0.9), word(" Three", 1.0, 1.3),
             word(" four", after, after + 0.5), word(" five", after + 0.6, after + 1.0)]
    assert texts(cut_segments(words)) == [" One two.", " Three", " four five"]


def test_a_long_sentence_is_cut_before_it_passes_the_longest_segment() -> None:
    words = [word(f" w{i}", i * 0.5, i * 0.5 + 0.4) for i in range(80)]  # 40 s, no stops
    segments = cut_segments(words)
    assert [w for s in segments for w in s] == words
    assert all(s[-1].end_s - s[0].start_s <= MAX_SEGMENT_S for s in segments)
    assert len(segments) == 3
    assert cut_segments([]) == []
