"""Merge speech spans into chunks of at most 30 s (the encoder's window)."""

from __future__ import annotations

from engine.types import SpeechSpan

WINDOW_S = 30.0


def split_long_spans(spans: list[SpeechSpan], limit_s: float = WINDOW_S) -> list[SpeechSpan]:
    """Cut any span longer than the window into window-sized pieces (nothing is ever trimmed)."""
    out: list[SpeechSpan] = []
    for span in spans:
        start = span.start_s
        while span.end_s - start > limit_s:
            out.append(SpeechSpan(start, start + limit_s))
            start += limit_s
        if span.end_s > start:
            out.append(SpeechSpan(start, span.end_s))
    return out


def plan_chunks(spans: list[SpeechSpan], limit_s: float = WINDOW_S) -> list[tuple[SpeechSpan, ...]]:
    """Group consecutive spans greedily so that each group's speech fits in one window."""
    chunks: list[tuple[SpeechSpan, ...]] = []
    current: list[SpeechSpan] = []
    filled_s = 0.0
    for span in split_long_spans(spans, limit_s):
        if current and filled_s + span.duration_s > limit_s:
            chunks.append(tuple(current))
            current, filled_s = [], 0.0
        current.append(span)
        filled_s += span.duration_s
    if current:
        chunks.append(tuple(current))
    return chunks


def voiced_in_chunk(group: tuple[SpeechSpan, ...],
                    voiced: list[SpeechSpan]) -> tuple[SpeechSpan, ...]:
    """The voiced stretches that fall inside a chunk's spans, in chunk time (the spans glued
    end to end, as the chunk's audio is)."""
    out: list[SpeechSpan] = []
    elapsed = 0.0
    for span in group:
        for v in voiced:
            start, end = max(v.start_s, span.start_s), min(v.end_s, span.end_s)
            if end > start:
                out.append(SpeechSpan(elapsed + start - span.start_s,
                                      elapsed + end - span.start_s))
        elapsed += span.duration_s
    return tuple(out)
