"""Pack short utterances of different files into shared 30 s windows, and split the text back.

The encoder always sees 30 s, so a 5 s clip decoded alone pays for 30 s of encoder work. Packing
lays several whole clips (one item's only chunk each) into one window with silence between them,
decodes the window with timestamps, and gives each segment to the clip whose speech it covers; a
segment over two clips' speech is cut by word timings (cross-attention alignment on the encoder
output already computed). The runner decodes a clip alone again when its share of a window looks
wrong (`share_is_suspect`).

The window's features are the clips' own features laid side by side: each clip brings its speech
frames and the silence frames after them, so no audio needs to reach the main process. With the
log-mel on the device (the torch encoder on CUDA), the window lists the clips' samples and where
each one's frames go, and the device lays them out the same way.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from engine.config import DecodeConfig
from engine.decode.assemble import compression_ratio, make_segment, split_segments
from engine.decode.fallback import is_silent
from engine.decode.words import Word
from engine.types import (
    FRAMES_PER_S,
    WINDOW_FRAMES,
    Chunk,
    ChunkRequest,
    Decoded,
    DeviceMel,
    MelPiece,
    PackedChunk,
    Prompt,
    Segment,
)

# fewer words than this per second of a clip's speech: the model skipped it (slowest clip of our
# corpus: 0.24 words/s over its whole file, more over its speech)
MIN_WORDS_PER_S = 0.3
SHARED_SPEECH_S = 0.5  # a segment over this much of two clips' speech holds words of both


def pack(requests: list[ChunkRequest], gap_s: float, fill_s: float) -> list[ChunkRequest]:
    """Packable requests laid into windows (first fit, longest first); others untouched.

    Only requests with the same prompt (language, task, initial prompt) share a window. A clip
    that fits no window with another stays a request of its own.
    """
    groups: dict[Prompt, list[Chunk]] = defaultdict(list)
    out = []
    for request in requests:
        if request.packable and isinstance(request.chunk, Chunk):
            groups[request.prompt].append(request.chunk)
        else:
            out.append(request)
    for prompt, chunks in groups.items():
        for members in _first_fit(chunks, gap_s, fill_s):
            if len(members) == 1:
                out.append(ChunkRequest(members[0], prompt, packable=True))
            else:
                out.append(ChunkRequest(build_window(members, gap_s), prompt))
    return out


def _first_fit(chunks: list[Chunk], gap_s: float, fill_s: float) -> list[list[Chunk]]:
    """Chunks in windows: longest first, each into the first window it still fits."""
    windows: list[list[Chunk]] = []
    used_s: list[float] = []
    for chunk in sorted(chunks, key=lambda c: c.duration_s, reverse=True):
        for i, members in enumerate(windows):
            if used_s[i] + gap_s + chunk.duration_s <= fill_s:
                members.append(chunk)
                used_s[i] += gap_s + chunk.duration_s
                break
        else:
            windows.append([chunk])
            used_s.append(chunk.duration_s)
    return windows


def build_window(chunks: list[Chunk], gap_s: float) -> PackedChunk:
    """Chunks side by side in one window's features, `gap_s` of each one's silence after it.

    Chunks whose log-mel is left for the device (`DeviceMel`) give a window of pieces, laid
    out the same way when the device computes it."""
    first = chunks[0].features
    total = WINDOW_FRAMES if isinstance(first, DeviceMel) else first.shape[1]
    offsets, places = _layout(chunks, gap_s, total)
    if isinstance(first, DeviceMel):
        pieces = tuple(MelPiece(_samples_of(chunk), position, frames)
                       for chunk, (position, frames) in zip(chunks, places, strict=True))
        return PackedChunk(tuple(chunks), tuple(offsets), DeviceMel(pieces))
    features = np.empty_like(first)
    for chunk, (position, frames) in zip(chunks, places, strict=True):
        if not isinstance(chunk.features, np.ndarray):
            raise ValueError("a window cannot mix host features and features for the device")
        features[:, position: position + frames] = chunk.features[:, :frames]
    return PackedChunk(tuple(chunks), tuple(offsets), features)


def _layout(chunks: list[Chunk], gap_s: float,
            total: int) -> tuple[list[float], list[tuple[int, int]]]:
    """Where each chunk starts in the window (s), and its (first frame, frames) there."""
    offsets, places = [], []
    position = 0
    for i, chunk in enumerate(chunks):
        offsets.append(position / FRAMES_PER_S)
        last = i == len(chunks) - 1
        frames = total - position if last else int(round((chunk.duration_s + gap_s) * FRAMES_PER_S))
        frames = min(frames, total - position)
        places.append((position, frames))
        position += frames
    return offsets, places


def _samples_of(chunk: Chunk) -> np.ndarray:
    """The samples of a whole chunk left for the device's log-mel."""
    mel = chunk.features
    if not (isinstance(mel, DeviceMel) and len(mel.pieces) == 1 and mel.shift_frames == 0
            and mel.pieces[0].position == 0):
        raise ValueError("only whole chunks can be packed, each with its own samples")
    return mel.pieces[0].samples


def split_window(run: list[Decoded], tokenizer: Any,
                 align: Callable[[Decoded], list[Word]]) -> list[list[Segment]]:
    """Each member's segments (source time) from the decodes of one packed window.

    A segment goes whole to the member whose speech it overlaps most: the model's timestamps
    after a silence are often early by a second or more, so a segment that starts in the gap
    (or in the previous clip's last words) is still the next clip's. A segment over at least
    SHARED_SPEECH_S of two members' speech holds words of both: it is cut by word timings
    (cross-attention alignment), each word going to the member whose region it ends in.
    A decode gives nothing to the members its continuation starts at or after (see
    `PackedChunk.tail`): the continuation decodes them again.
    """
    window = run[0].request.chunk
    if not isinstance(window, PackedChunk):
        raise TypeError("split_window: the run is not of a packed window")
    members, offsets = window.members, window.offsets_s
    speech = [(offset, offset + member.duration_s)
              for member, offset in zip(members, offsets, strict=True)]
    cuts = [(speech[i][1] + speech[i + 1][0]) / 2 for i in range(len(members) - 1)]

    def owner(time_s: float) -> int:
        return bisect.bisect_left(cuts, time_s)

    shares: list[list[Segment]] = [[] for _ in members]

    def give(index: int, start_s: float, end_s: float, tokens: list[int], decoded: Decoded,
             redone_from_s: float) -> None:
        member, offset = members[index], offsets[index]
        if offset >= redone_from_s:
            return
        local = [min(max(t - offset, 0.0), member.duration_s) for t in (start_s, end_s)]
        segment = make_segment(member, local[0], local[1], tokenizer.decode(tokens), decoded)
        if segment is not None:
            shares[index].append(segment)

    views = [d.request.chunk for d in run if isinstance(d.request.chunk, PackedChunk)]
    for decoded, view, redone_from_s in zip(
            run, views, [*(v.origin_s for v in views[1:]), math.inf], strict=True):
        words: list[Word] | None = None
        first_token = 0  # index of the segment's first text token in the decode's text
        for start_s, end_s, tokens in split_segments(
                decoded.tokens, tokenizer.timestamp_begin, tokenizer.eot, view.duration_s):
            start_s, end_s = start_s + view.origin_s, end_s + view.origin_s
            heard = [max(0.0, min(end_s, b) - max(start_s, a)) for a, b in speech]
            if sum(h >= SHARED_SPEECH_S for h in heard) <= 1:
                index = int(np.argmax(heard)) if max(heard) > 0 else owner((start_s + end_s) / 2)
                give(index, start_s, end_s, tokens, decoded, redone_from_s)
            else:
                words = align(decoded) if words is None else words
                for index, group in _words_by_member(
                        words, first_token, first_token + len(tokens), view.origin_s, owner):
                    give(index, group[0].start_s, group[-1].end_s,
                         [t for w in group for t in w.tokens], decoded, redone_from_s)
            first_token += len(tokens)
    return shares


def _words_by_member(words: list[Word], begin: int, end: int, origin_s: float,
                     owner: Callable[[float], int]) -> list[tuple[int, list[Word]]]:
    """The words whose first token is in text tokens [begin, end), grouped in order by the member
    where each word ends: the alignment stretches the first word after a silence back over the
    silence, so a word's end, not its start, tells where it was spoken. Punctuation stays with
    the word before it."""
    groups: list[tuple[int, list[Word]]] = []
    position = 0
    for word in words:
        if begin <= position < end:
            word = replace(word, start_s=word.start_s + origin_s, end_s=word.end_s + origin_s)
            punctuation = not any(c.isalnum() for c in word.text)
            index = groups[-1][0] if groups and punctuation else owner(word.end_s)
            if groups and groups[-1][0] == index:
                groups[-1][1].append(word)
            else:
                groups.append((index, [word]))
        position += len(word.tokens)
    return groups


def share_is_suspect(segments: list[Segment], duration_s: float,
                     compression_ratio_threshold: float | None) -> bool:
    """A member's share that calls for decoding it alone: no text (VAD found speech in it), far
    too few words for its speech (the model skipped the clip, leaving a stray word), or text too
    repetitive."""
    text = " ".join(s.text for s in segments)
    if len(text.split()) < max(1.0, MIN_WORDS_PER_S * duration_s):
        return True
    limit = compression_ratio_threshold
    return limit is not None and compression_ratio(text) > limit


def shares(run: list[Decoded], config: DecodeConfig, tokenizer: Any,
           align: Callable[[Decoded], list[Word]]) -> list[list[Segment] | None]:
    """Each member's segments from the decodes of a packed window, or None where the member
    must be decoded alone: every member when a decode needed fallback or looks silent, else
    those whose share looks wrong (`share_is_suspect`)."""
    window = run[0].request.chunk
    if not isinstance(window, PackedChunk):
        raise TypeError("shares: the run is not of a packed window")
    if any(d.temperature > config.temperatures[0] or is_silent(d, config) for d in run):
        return [None] * len(window.members)
    split = split_window(run, tokenizer, align)
    return [None if share_is_suspect(share, member.duration_s,
                                     config.compression_ratio_threshold) else share
            for member, share in zip(window.members, split, strict=True)]
