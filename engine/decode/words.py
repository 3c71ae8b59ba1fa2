"""Word timings from cross-attention alignment, and segments cut from them.

With `--timestamps aligned` the model decodes without timestamp tokens (on a GPU, CTranslate2's
timestamp rules cost more than the rest of a decoder step: see bench/RESULTS.md) and segments are
cut from word timings instead: after a sentence's end, at a pause, or before a segment grows past
MAX_SEGMENT_S. The same word timings fill the `words` column (`--word-timestamps`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.types import Word

__all__ = ["Word", "cut_segments", "from_alignment"]

TOKENS_PER_S = 50  # encoder positions per second
SENTENCE_ENDS = ".。!！?？"
PREPENDED = "\"'“¿([{-"  # faster-whisper's defaults: punctuation joined to the next word...
APPENDED = "\"'.。,，!！?？:：”)]}、"  # ...and to the word before
PAUSE_S = 1.0  # silence between two words that starts a new segment
MAX_SEGMENT_S = 15.0  # a segment longer than this is cut before its next word
MAX_WORD_S = 1.4  # longest plausible word after a pause (faster-whisper: 2x median, median <= 0.7)


def from_alignment(tokenizer: Any, text_tokens: list[int], alignments: Sequence[tuple[int, int]],
                   token_probs: Sequence[float], duration_s: float) -> list[Word]:
    """Words of one aligned text: CTranslate2 `align` pairs (text index, time index) become word
    start/end times where the text index moves on; punctuation joins its neighbour word."""
    if not text_tokens:
        return []
    text_index = np.array([pair[0] for pair in alignments])
    time_index = np.array([pair[1] for pair in alignments])
    jumps = np.pad(np.diff(text_index), (1, 0), constant_values=1).astype(bool)
    jump_s = np.minimum(time_index[jumps] / TOKENS_PER_S, duration_s)
    texts, word_tokens = tokenizer.split_to_word_tokens(list(text_tokens) + [tokenizer.eot])
    bounds = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    probs = np.asarray(token_probs, dtype=np.float64)
    words = [Word(text, tuple(tokens), float(jump_s[b]), float(jump_s[e]),
                  float(probs[b:e].mean()) if e > b else 0.0)
             for text, tokens, b, e in zip(texts[:-1], word_tokens[:-1], bounds[:-1], bounds[1:],
                                           strict=True)]
    return _after_pauses(_merge_punctuation(words))


def _merge_punctuation(words: list[Word]) -> list[Word]:
    """Opening punctuation joins the next word, closing punctuation the word before."""
    out: list[Word] = []
    carry: Word | None = None
    for word in words:
        if carry is not None:
            word = Word(carry.text + word.text, carry.tokens + word.tokens, carry.start_s,
                        word.end_s, min(carry.probability, word.probability))
            carry = None
        stripped = word.text.strip()
        if word.text.startswith(" ") and stripped and all(c in PREPENDED for c in stripped):
            carry = word
        elif out and stripped and not word.text.startswith(" ") and all(
                c in APPENDED for c in stripped):
            last = out[-1]
            out[-1] = Word(last.text + word.text, last.tokens + word.tokens, last.start_s,
                           max(last.end_s, word.end_s), last.probability)
        else:
            out.append(word)
    if carry is not None:
        out.append(carry)
    return out


def _after_pauses(words: list[Word]) -> list[Word]:
    """The alignment stretches a chunk's first word, and the first word of a sentence, back over
    the silence before it: such a word longer than MAX_WORD_S starts MAX_WORD_S before its end."""
    out = []
    for i, word in enumerate(words):
        opens = i == 0 or words[i - 1].text.rstrip()[-1:] in SENTENCE_ENDS
        if opens and word.end_s - word.start_s > MAX_WORD_S:
            word = Word(word.text, word.tokens, word.end_s - MAX_WORD_S, word.end_s,
                        word.probability)
        out.append(word)
    return out


def cut_segments(words: list[Word]) -> list[list[Word]]:
    """Words grouped into segments: a new one after a sentence's end, after a pause of PAUSE_S,
    or before a word that would make the segment longer than MAX_SEGMENT_S."""
    segments: list[list[Word]] = []
    current: list[Word] = []
    for word in words:
        if current and (
                current[-1].text.rstrip()[-1:] in SENTENCE_ENDS
                or word.start_s - current[-1].end_s >= PAUSE_S
                or word.end_s - current[0].start_s > MAX_SEGMENT_S):
            segments.append(current)
            current = []
        current.append(word)
    if current:
        segments.append(current)
    return segments
