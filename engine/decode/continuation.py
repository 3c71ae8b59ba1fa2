"""Speech the decoder left out of a chunk, and where to decode that chunk again from (issue 14).

A decode can leave speech out: it stops before the chunk's end, or skips a stretch inside it
(seen where a chunk glues spans of different voices, and under a previous-text prompt). Where
VAD heard speech (`Chunk.voiced`) that no aligned word covers, the chunk is decoded again from
there, as Whisper's sequential loop seeks to where its last window stopped; the first decode is
cut to the words before that point, so that nothing is transcribed twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from engine.config import DecodeConfig
from engine.decode.assemble import TIME_PRECISION_S
from engine.decode.fallback import is_silent, too_repetitive
from engine.decode.words import MAX_WORD_S, SENTENCE_ENDS, Word
from engine.types import Chunk, ChunkRequest, Decoded, PackedChunk, Prompt, SpeechSpan

MAX_CONTINUATIONS = 3  # decodes of one chunk after its first
MIN_TAIL_S = 1.0  # speech left after the model's last timestamp that is worth decoding again
MIN_LEFT_OUT_S = 0.8  # voiced speech left out that is worth decoding again
MIN_GAIN_S = 0.4  # voiced speech a continuation must cover beyond the words it replaces...
MIN_GAIN_WORDS = 2  # ...and words it must add to them
MAX_REPEAT = 2  # words at a continuation's start checked against the words before it
JOIN_S = 0.3  # voiced pieces no word covers, this close, are one stretch of left-out speech


def unspoken_tail_s(words: list[Word], duration_s: float, min_tail_s: float) -> float | None:
    """Where a chunk's speech left out by the decoder begins when nothing is known of where its
    speech is (VAD off): the end of its last aligned word, when at least `min_tail_s` of the
    chunk follows it; None when it has no words."""
    if not words:
        return None
    end_s = max(word.end_s for word in words)
    return end_s if end_s > 0.0 and duration_s - end_s >= min_tail_s else None


def left_out_s(words: list[Word], voiced: Sequence[SpeechSpan], min_s: float,
               not_before_s: float) -> float | None:
    """Where speech the decoder left out begins, in chunk time: where the covered time before
    the first stretch of voiced speech holding at least `min_s` that no aligned word covers ends
    (pieces less than JOIN_S apart count as one stretch; shorter pieces before it come along).
    Not reported when that is before `not_before_s` (decoding again from there would see the
    same window). What a word covers: `_covers`.
    """
    covers = _covers(words)
    stretch: list[tuple[float, float]] = []
    for piece in _uncovered(voiced, covers) + [(float("inf"), float("inf"))]:
        if stretch and piece[0] - stretch[-1][1] >= JOIN_S:
            if sum(end - start for start, end in stretch) >= min_s:
                # from the last covered time before it: shorter pieces in between come along
                from_s = _before_misplaced_word(
                    words, max((end for _, end in covers if end <= stretch[0][0]), default=0.0))
                if from_s >= not_before_s:
                    return from_s
            stretch = []
        stretch.append(piece)
    return None


def uncovered_s(words: list[Word], voiced: Sequence[SpeechSpan], from_s: float = 0.0) -> float:
    """Seconds of voiced speech after `from_s` that no aligned word covers."""
    return sum(end - max(start, from_s) for start, end in _uncovered(voiced, _covers(words))
               if end > from_s)


def _covers(words: list[Word]) -> list[tuple[float, float]]:
    """The time each word accounts for, sorted: the alignment stretches a word over speech the
    decoder skipped, so a word longer than MAX_WORD_S covers only MAX_WORD_S / 2 at each end."""
    covers: list[tuple[float, float]] = []
    for w in words:
        if w.end_s - w.start_s <= MAX_WORD_S:
            covers.append((w.start_s, w.end_s))
        else:
            covers += [(w.start_s, w.start_s + MAX_WORD_S / 2), (w.end_s - MAX_WORD_S / 2, w.end_s)]
    return sorted(covers)


def _uncovered(voiced: Sequence[SpeechSpan],
               covers: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The parts of the voiced stretches outside every cover (covers sorted by start)."""
    out = []
    for v in voiced:
        start = v.start_s
        for cover_start, cover_end in covers:
            if cover_end <= start or cover_start >= v.end_s:
                continue
            if cover_start > start:
                out.append((start, cover_start))
            start = max(start, cover_end)
        if v.end_s > start:
            out.append((start, v.end_s))
    return out


def _before_misplaced_word(words: list[Word], time_s: float) -> float:
    """`time_s`, or the start of the stretched word it falls in unless that word ends a sentence:
    a sentence's last word is stretched over the pause after it, any other stretched word may
    belong after the skipped speech (seen: "And" of "And so it begins" laid over 4 s of it)."""
    for w in words:
        if w.start_s < time_s < w.end_s and w.text.rstrip()[-1:] not in SENTENCE_ENDS:
            return w.start_s
    return time_s


def cut_before(decoded: Decoded, from_s: float, tokenizer: Any,
               close_segment: bool) -> Decoded:
    """`decoded` cut to its words that start before `from_s`, with those words. With timestamp
    tokens (`close_segment`), an open last segment is closed at `from_s`."""
    words = decoded.words or ()
    kept = tuple(w for w in words if w.start_s < from_s)
    if len(kept) == len(words):
        return decoded
    tokens = list(decoded.tokens[:_text_end(decoded.tokens, kept, tokenizer.eot)])
    if close_segment and (not tokens or tokens[-1] < tokenizer.timestamp_begin):
        tokens.append(tokenizer.timestamp_begin + int(round(from_s / TIME_PRECISION_S)))
    return dataclasses.replace(decoded, tokens=tuple(tokens), words=kept)


def without_repeated_start(tail: Decoded, before: Sequence[Word], eot: int) -> Decoded:
    """A continuation without the words it begins with when they repeat the last words before
    it (up to MAX_REPEAT): a continuation that starts inside a slowly spoken word hears it
    again."""
    words = tail.words or ()
    for count in range(min(MAX_REPEAT, len(words), len(before)), 0, -1):
        if [_plain(w) for w in words[:count]] == [_plain(w) for w in before[-count:]]:
            end = _text_end(tail.tokens, words[:count], eot)
            tokens = tuple(t for t in tail.tokens[:end] if t >= eot) + tail.tokens[end:]
            return dataclasses.replace(tail, tokens=tokens, words=words[count:])
    return tail


def unfinished_tail_s(d: Decoded, config: DecodeConfig, timestamp_begin: int) -> float | None:
    """Where to decode again when the model stopped before the window's end (timestamp tokens).

    Like Whisper's seek: a sequence that ends on a closed segment (two timestamps) with more
    than MIN_TAIL_S of speech after it has left that speech out.
    """
    if config.timestamps != "tokens" or len(d.tokens) < 2:
        return None
    if not (d.tokens[-1] >= timestamp_begin and d.tokens[-2] >= timestamp_begin):
        return None
    last_s = float((d.tokens[-1] - timestamp_begin) * TIME_PRECISION_S)
    if last_s <= 0 or d.request.chunk.duration_s - last_s < MIN_TAIL_S:
        return None
    return last_s


def left_out(d: Decoded, config: DecodeConfig, tokenizer: Any) -> tuple[float, Decoded] | None:
    """Where to decode `d`'s window again from when it left speech out, and `d` cut before that
    point (`cut_before`). With VAD, that is voiced speech no aligned word covers (`left_out_s`);
    without, a tail after the last word (aligned) or after the last closed segment (tokens)."""
    chunk = d.request.chunk
    from_s = None
    if isinstance(chunk, Chunk) and d.words is not None:
        words = list(d.words)
        from_s = (unspoken_tail_s(words, chunk.duration_s, MIN_TAIL_S) if chunk.voiced is None
                  else left_out_s(words, chunk.voiced, MIN_LEFT_OUT_S, MIN_TAIL_S))
    elif config.timestamps == "tokens" and not is_silent(d, config):
        from_s = unfinished_tail_s(d, config, tokenizer.timestamp_begin)
    if from_s is None:
        return None
    if d.words is None:
        return from_s, d
    return from_s, cut_before(d, from_s, tokenizer, config.timestamps == "tokens")


def wants_words(d: Decoded, config: DecodeConfig) -> bool:
    """Whether finding left-out speech aligns `d`'s words: a spoken plain chunk, with voiced
    speech known or segments cut by words."""
    chunk = d.request.chunk
    return (isinstance(chunk, Chunk) and d.words is None and not is_silent(d, config)
            and (chunk.voiced is not None or config.timestamps == "aligned"))


def continuation(said: Decoded, from_s: float, eot: int) -> ChunkRequest:
    """The rest of `said`'s window after `from_s`, decoded with timestamp tokens (a decoder
    made to place each segment in time skips less: seen where text-only decodes of one
    window dropped 15 s of an atypical voice twice), prompted with the text before it (the
    chunk's own prompt, then what `said` kept) as Whisper's sequential loop prompts its next
    window.

    A packed window goes on from the start of the member whose speech was left out
    (`PackedChunk.tail`) with the window's own prompt: its members are whole files, so the
    text before that point is other files' and never prompts it; `packing.split_window` gives
    the members from there on the continuation's text, and one whose share still looks wrong
    is decoded alone."""
    request = said.request
    if isinstance(request.chunk, PackedChunk):
        return ChunkRequest(request.chunk.tail(from_s), request.prompt)
    prompt = request.prompt
    previous = prompt.previous + tuple(t for t in said.tokens if t < eot)
    return ChunkRequest(request.chunk.tail(from_s),
                        Prompt.after(prompt.language, prompt.task, previous, timestamps=True))


def hears_more(uncut: Decoded, cut: Decoded, from_s: float, tail: Decoded,
               config: DecodeConfig) -> bool:
    """Whether a continuation from `from_s` covers at least MIN_GAIN_S more of the chunk's
    voiced speech than the uncut decode's words did, with at least MIN_GAIN_WORDS more words
    than it replaces (always, when VAD is off). Never when its best attempt is still too
    repetitive: a continuation of a second of noise can loop ("Yeah." 40 times, seen at a
    conditioned file's end), and the uncut decode is there to keep instead."""
    if too_repetitive(tail, config):
        return False
    chunk, tail_chunk = uncut.request.chunk, tail.request.chunk
    if not isinstance(chunk, Chunk) or not isinstance(tail_chunk, Chunk):
        return True
    if chunk.voiced is None or tail_chunk.voiced is None:
        return True
    if tail.words is None or uncut.words is None or cut.words is None:
        return False
    replaced = len(uncut.words) - len(cut.words)
    return (len(tail.words) >= replaced + MIN_GAIN_WORDS
            and uncovered_s(list(tail.words), tail_chunk.voiced)
            <= uncovered_s(list(uncut.words), chunk.voiced, from_s) - MIN_GAIN_S)


def _text_end(tokens: tuple[int, ...], words: Sequence[Word], eot: int) -> int:
    """Where the text of `words`, the first words of `tokens`, ends: the index of the next text
    token (timestamp tokens after those words stay before it)."""
    text_left = sum(len(w.tokens) for w in words)
    for index, token in enumerate(tokens):
        if token < eot:
            if text_left == 0:
                return index
            text_left -= 1
    return len(tokens)


def _plain(word: Word) -> str:
    return "".join(c for c in word.text.lower() if c.isalnum())
