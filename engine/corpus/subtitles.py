"""Readable subtitle cues from a row's segments or words.

The common broadcast guidelines (and faster-whisper's and WhisperX's writers) keep a cue on the
screen for at most about 7 s, in at most 2 lines of about 42 characters. A segment longer than
that is split on its words: at the words' own times when the row has them (`--word-timestamps`),
else at times spread over the segment by characters. A cue also ends at a pause between words
and, once it fills more than a line, after a sentence's last word. Lines are balanced: the break
goes at the space nearest the middle that keeps both lines within the limit.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

MAX_CUE_S = 7.0
MAX_LINE_CHARS = 42
PAUSE_S = 1.0  # a silence between words this long ends a cue
SENTENCE_END = (".", "?", "!")


@dataclass(frozen=True, slots=True)
class Cue:
    """One subtitle; `text` holds its lines, joined by newlines."""

    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True, slots=True)
class Piece:
    """A word with its times (its own, or spread over its segment)."""

    start_s: float
    end_s: float
    text: str


def readable_cues(row: dict[str, Any]) -> list[Cue]:
    """A row's cues in time order. No cue spans two segments; a segment's words come from the
    row's words when it has them (each in the segment its middle falls in), else are spread."""
    segments = sorted(row.get("segments") or (), key=lambda s: float(s["start_s"]))
    words = sorted((Piece(float(w["start_s"]), float(w["end_s"]), w["word"].strip())
                    for w in row.get("words") or () if w["word"] and w["word"].strip()),
                   key=lambda p: p.start_s)
    if words:
        starts = [float(s["start_s"]) for s in segments]
        by_segment: dict[int, list[Piece]] = {}
        for word in words:
            middle = (word.start_s + word.end_s) / 2
            by_segment.setdefault(max(bisect_right(starts, middle) - 1, 0), []).append(word)
        return [cue for _, pieces in sorted(by_segment.items()) for cue in _group(pieces)]
    return [cue for s in segments
            for cue in _group(spread(float(s["start_s"]), float(s["end_s"]), s["text"] or ""))]


def spread(start_s: float, end_s: float, text: str) -> list[Piece]:
    """A segment's words, each given the share of its time that its characters take."""
    words = text.split()
    total = max(len(" ".join(words)), 1)
    span = max(end_s - start_s, 0.0)
    pieces, offset = [], 0
    for word in words:
        pieces.append(Piece(start_s + span * offset / total,
                            start_s + span * (offset + len(word)) / total, word))
        offset += len(word) + 1
    return pieces


def _group(pieces: Sequence[Piece]) -> list[Cue]:
    cues: list[Cue] = []
    current: list[Piece] = []
    for piece in pieces:
        if current and _ends_before(current, piece):
            cues.append(_cue(current))
            current = []
        current.append(piece)
    if current:
        cues.append(_cue(current))
    return cues


def _ends_before(current: list[Piece], piece: Piece) -> bool:
    """Whether the cue holding `current` must end before `piece`."""
    text = _text(current)
    return (wrap(f"{text} {piece.text}") is None
            or piece.end_s - current[0].start_s > MAX_CUE_S
            or piece.start_s - current[-1].end_s >= PAUSE_S
            or (text.endswith(SENTENCE_END) and len(text) > MAX_LINE_CHARS))


def _cue(pieces: list[Piece]) -> Cue:
    text = _text(pieces)
    lines = wrap(text) or [text]  # one word longer than two lines stays whole
    return Cue(pieces[0].start_s, max(pieces[0].start_s, pieces[-1].end_s), "\n".join(lines))


def _text(pieces: Iterable[Piece]) -> str:
    return " ".join(p.text for p in pieces)


def wrap(text: str) -> list[str] | None:
    """`text` in one line, or two balanced lines, of MAX_LINE_CHARS at most; None if it does
    not fit (the break is the space nearest the middle that fits both lines)."""
    if len(text) <= MAX_LINE_CHARS:
        return [text]
    spaces = [i for i, c in enumerate(text) if c == " "]
    fitting = [i for i in spaces if i <= MAX_LINE_CHARS and len(text) - i - 1 <= MAX_LINE_CHARS]
    if not fitting:
        return None
    cut = min(fitting, key=lambda i: abs(len(text) - 2 * i - 1))
    return [text[:cut], text[cut + 1:]]
