"""Turn decoded tokens into timestamped segments, and regroup chunks into per-item results."""

from __future__ import annotations

import bisect
import itertools
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from engine.config import DecodeConfig
from engine.decode.words import Word, cut_segments
from engine.types import (
    Chunk,
    ChunkResult,
    Decoded,
    ItemResult,
    PreparedItem,
    Route,
    Segment,
    TimedWord,
)

TIME_PRECISION_S = 0.02  # seconds per timestamp token

# Languages written without spaces between words: their segments are joined without one.
UNSPACED_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "yue", "bo"})


def compression_ratio(text: str) -> float:
    """faster-whisper's repetition measure: text size over its zlib-compressed size."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def split_segments(tokens: tuple[int, ...], timestamp_begin: int, eot: int,
                   duration_s: float) -> list[tuple[float, float, list[int]]]:
    """Cut a token sequence into (start_s, end_s, text tokens) at its timestamp tokens.

    Times are chunk-local and clamped to the chunk's speech duration. Text after the last
    timestamp runs to the end of the chunk; a sequence without timestamps is one segment.
    """
    segments: list[tuple[float, float, list[int]]] = []
    start_s: float | None = None
    last_end_s = 0.0
    text: list[int] = []
    for token in tokens:
        if token >= timestamp_begin:
            time_s = min((token - timestamp_begin) * TIME_PRECISION_S, duration_s)
            if text:
                segments.append((start_s if start_s is not None else last_end_s, time_s, text))
                last_end_s, start_s, text = time_s, None, []
            else:
                start_s = time_s
        elif token < eot:
            text.append(token)
    if text:
        segments.append((start_s if start_s is not None else last_end_s, duration_s, text))
    return segments


def to_segments(decoded: Decoded, tokenizer: Any, words: list[Word] | None = None,
                cut_by_words: bool = False, keep_words: bool = False) -> list[Segment]:
    """Segments of one decode of a plain chunk, in source time: cut at the timestamp tokens, or
    by the word timings (`cut_by_words`); with their words when `keep_words`."""
    chunk = decoded.request.chunk
    if not isinstance(chunk, Chunk):
        raise TypeError("to_segments: a packed window's segments come from packing.split_window")
    if cut_by_words:
        if words is None:
            raise ValueError("to_segments: segments cut by words need the decode's words")
        pieces = [(g[0].start_s, g[-1].end_s, [t for w in g for t in w.tokens], g)
                  for g in cut_segments(words)]
    else:
        spans = split_segments(decoded.tokens, tokenizer.timestamp_begin, tokenizer.eot,
                               chunk.duration_s)
        # each word goes to the segment that holds its first token
        ends = list(itertools.accumulate(len(tokens) for _, _, tokens in spans))
        groups: list[list[Word]] = [[] for _ in spans]
        position = 0
        for word in words or []:
            groups[min(bisect.bisect_right(ends, position), len(spans) - 1)].append(word)
            position += len(word.tokens)
        pieces = [(start_s, end_s, tokens, group)
                  for (start_s, end_s, tokens), group in zip(spans, groups, strict=True)]
    out = []
    for start_s, end_s, tokens, group in pieces:
        timed = tuple(_timed(chunk, w) for w in group) if keep_words else None
        segment = make_segment(chunk, start_s, end_s, tokenizer.decode(tokens), decoded, timed)
        if segment is not None:
            out.append(segment)
    return out


def _timed(chunk: Chunk, word: Word) -> TimedWord:
    return TimedWord(round(chunk.to_source_time(word.start_s), 3),
                     round(chunk.to_source_time(max(word.start_s, word.end_s)), 3),
                     word.text, round(word.probability, 4))


def make_segment(chunk: Chunk, start_s: float, end_s: float, text: str,
                 decoded: Decoded, words: tuple[TimedWord, ...] | None = None) -> Segment | None:
    """A segment from chunk-time bounds, in source time; None when it holds no text."""
    text = text.strip()
    if not text:
        return None
    return Segment(
        start_s=round(chunk.to_source_time(start_s), 3),
        end_s=round(chunk.to_source_time(max(start_s, end_s)), 3),
        text=text,
        avg_logprob=float(decoded.avg_logprob),
        no_speech_prob=float(decoded.no_speech_prob),
        compression_ratio=compression_ratio(text),
        words=words,
    )


def is_silence(decoded: Decoded, no_speech_threshold: float | None,
               log_prob_threshold: float | None) -> bool:
    """faster-whisper's rule for skipping a window: likely no speech and an improbable text."""
    if no_speech_threshold is None or decoded.no_speech_prob <= no_speech_threshold:
        return False
    return log_prob_threshold is None or decoded.avg_logprob < log_prob_threshold


def chunk_result(run: list[Decoded], route: Route, config: DecodeConfig,
                 tokenizer: Callable[[str, str], Any]) -> ChunkResult:
    """A plain chunk's result from its decodes (the first, then its continuations): their
    segments, none from decodes judged silent; words where aligned (`Decoded.words`)."""
    chunk = run[0].request.chunk
    if not isinstance(chunk, Chunk):
        raise TypeError("chunk_result: the run is of a packed window")
    segments = [s for d in run if not is_silence(d, config.no_speech_threshold,
                                                 config.log_prob_threshold)
                for s in to_segments(
                    d, tokenizer(d.request.language, d.request.task),
                    None if d.words is None else list(d.words),
                    cut_by_words=config.timestamps == "aligned",
                    keep_words=config.word_timestamps)]
    return ChunkResult(chunk, tuple(segments), route, max(d.temperature for d in run))


@dataclass
class _Pending:
    prepared: PreparedItem
    segments: dict[int, list[Segment]] = field(default_factory=dict)


class Collector:
    """Holds the chunks of items in flight and emits each item once all its chunks are back."""

    def __init__(self) -> None:
        self._pending: dict[str, _Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def expect(self, prepared: PreparedItem) -> None:
        self._pending[prepared.item.item_id] = _Pending(prepared)

    def add(self, chunk: Chunk, segments: list[Segment]) -> Iterator[ItemResult]:
        pending = self._pending[chunk.item_id]
        pending.segments[chunk.index] = segments
        if len(pending.segments) == len(pending.prepared.chunks):
            del self._pending[chunk.item_id]
            ordered = [s for index in sorted(pending.segments) for s in pending.segments[index]]
            yield finish(pending.prepared, ordered)


def finish(prepared: PreparedItem, segments: list[Segment]) -> ItemResult:
    """The result row of a prepared item (`empty` when it holds no text)."""
    joiner = "" if prepared.language in UNSPACED_LANGUAGES else " "
    text = joiner.join(s.text for s in segments).strip()
    return ItemResult(
        item=prepared.item,
        status="ok" if text else "empty",
        text=text,
        language=prepared.language,
        language_probability=prepared.language_probability,
        duration_s=prepared.duration_s,
        speech_s=prepared.speech_s,
        segments=tuple(segments),
    )
