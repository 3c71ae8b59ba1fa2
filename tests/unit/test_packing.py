"""Packing short chunks into shared windows, and splitting a window's text back to its members."""

import numpy as np
import pytest

from engine.config import DecodeConfig
from engine.decode.packing import build_window, pack, share_is_suspect, shares, split_window
from engine.decode.words import Word
from engine.types import (
    Chunk,
    ChunkRequest,
    Decoded,
    PackedChunk,
    Prompt,
    Segment,
    SpeechSpan,
)

TS, EOT = 1000, 999  # timestamp_begin and end-of-text of the fake tokenizer below


class Tokenizer:
    """Text tokens are word numbers: token 7 decodes to 'w7'."""

    timestamp_begin, eot = TS, EOT

    def decode(self, tokens: list[int]) -> str:
        return " ".join(f"w{t}" for t in tokens)


def ts(seconds: float) -> int:
    return TS + int(round(seconds / 0.02))


def chunk(item: str, start_s: float, end_s: float, level: float = 0.0) -> Chunk:
    features = np.full((2, 3000), -1.0, np.float32)
    features[:, : int(round((end_s - start_s) * 100))] = level
    return Chunk(item, 0, (SpeechSpan(start_s, end_s),), features)


def request(item: str, seconds: float, packable: bool = True, language: str = "en") -> ChunkRequest:
    prompt = Prompt(language, "transcribe", (1, 2))
    return ChunkRequest(chunk(item, 0.0, seconds), prompt, packable)


def members(requests: list[ChunkRequest]) -> list[list[str]]:
    out = []
    for r in requests:
        window = r.chunk
        items = window.members if isinstance(window, PackedChunk) else (window,)
        out.append(sorted(m.item_id for m in items))
    return sorted(out)


def test_pack_fills_windows_longest_first_with_gaps() -> None:
    packed = pack([request("a", 10), request("b", 12), request("c", 5), request("d", 20)],
                  gap_s=2.0, fill_s=30.0)
    # d (20) + gap + c (5) = 27; b (12) + gap + a (10) = 24
    assert members(packed) == [["a", "b"], ["c", "d"]]


def test_pack_leaves_long_and_unpackable_chunks_alone() -> None:
    packed = pack([request("long", 29), request("short", 3),
                   request("part-of-a-long-file", 4, packable=False)], gap_s=2.0, fill_s=30.0)
    assert members(packed) == [["long"], ["part-of-a-long-file"], ["short"]]
    assert not any(isinstance(r.chunk, PackedChunk) for r in packed)


def test_pack_never_mixes_languages() -> None:
    packed = pack([request("en1", 5), request("de1", 5, language="de"), request("en2", 5)],
                  gap_s=2.0, fill_s=30.0)
    assert members(packed) == [["de1"], ["en1", "en2"]]
    assert {r.language for r in packed if isinstance(r.chunk, PackedChunk)} == {"en"}


def test_window_features_are_each_members_speech_then_its_own_silence() -> None:
    window = build_window([chunk("a", 0, 3.0, level=1.0), chunk("b", 0, 2.0, level=2.0)], 1.0)
    assert window.offsets_s == (0.0, 4.0)
    assert window.duration_s == pytest.approx(6.0)
    row = window.features[0]
    assert (row[:300] == 1.0).all() and (row[300:400] == -1.0).all()
    assert (row[400:600] == 2.0).all() and (row[600:] == -1.0).all()


def decoded(window: PackedChunk, tokens: list[int], temperature: float = 0.0) -> Decoded:
    request = ChunkRequest(window, Prompt("en", "transcribe", (1, 2)))
    return Decoded(request, tuple(tokens), -0.2, 0.01, temperature, 1.0, np.zeros((1500, 4)))


def two_clip_window() -> PackedChunk:
    # a: source 10-14 s of its file at window 0-4 s; b: source 0-3 s at window 6-9 s
    return build_window([chunk("a", 10.0, 14.0), chunk("b", 0.0, 3.0)], gap_s=2.0)


def no_alignment(_: Decoded) -> list:
    raise AssertionError("segments over one member's speech need no word alignment")


def test_segments_go_to_their_member_in_source_time() -> None:
    window = two_clip_window()
    run = [decoded(window, [ts(0.5), 1, 2, ts(3.8), ts(6.2), 3, ts(8.9), EOT])]
    shares = split_window(run, Tokenizer(), no_alignment)
    assert [(s.start_s, s.end_s, s.text) for s in shares[0]] == [(10.5, 13.8, "w1 w2")]
    assert [(s.start_s, s.end_s, s.text) for s in shares[1]] == [(0.2, 2.9, "w3")]


def test_a_segment_across_the_gap_is_cut_by_word_timings() -> None:
    window = two_clip_window()  # a's speech 0-4 s, b's 6-9 s: the cut is at 5 s
    run = [decoded(window, [ts(0.0), 1, 2, 3, 4, 5, ts(8.0), EOT])]
    # as the alignment does: the first word after the silence is stretched back over it (w4
    # ends at 5.6 s though its middle is in a's region); a full stop may be stretched forward
    words = [Word(" w1", (1,), 0.2, 1.0, 0.9), Word(" w2", (2,), 1.0, 3.5, 0.9),
             Word(".", (3,), 3.5, 5.3, 0.9), Word(" w4", (4,), 5.3, 5.6, 0.9),
             Word(" w5", (5,), 6.0, 7.9, 0.9)]
    shares = split_window(run, Tokenizer(), lambda _: words)
    assert [(s.start_s, s.end_s, s.text) for s in shares[0]] == [(10.2, 14.0, "w1 w2 w3")]
    assert [(s.start_s, s.end_s, s.text) for s in shares[1]] == [(0.0, 1.9, "w4 w5")]


def test_a_segment_timestamped_early_goes_to_the_clip_whose_speech_it_covers() -> None:
    # after a silence the model's timestamps run early: b's sentence is stamped from 3.6 s,
    # inside a's last words ("... the true printed book" | "he began ...")
    window = two_clip_window()
    run = [decoded(window, [ts(0.0), 1, 2, ts(3.6), ts(3.6), 3, 4, ts(8.5), EOT])]
    shares = split_window(run, Tokenizer(), no_alignment)
    assert [(s.start_s, s.end_s, s.text) for s in shares[0]] == [(10.0, 13.6, "w1 w2")]
    assert [(s.start_s, s.end_s, s.text) for s in shares[1]] == [(0.0, 2.5, "w3 w4")]


def test_a_continuation_is_placed_at_its_origin() -> None:
    window = two_clip_window()
    first = decoded(window, [ts(0.0), 1, ts(3.0), EOT])
    rest = decoded(window.tail(5.0), [ts(1.0), 2, ts(3.5), EOT])  # window time 6.0-8.5
    shares = split_window([first, rest], Tokenizer(), no_alignment)
    assert [s.text for s in shares[0]] == ["w1"]
    assert [(s.start_s, s.end_s, s.text) for s in shares[1]] == [(0.0, 2.5, "w2")]


def test_a_continuation_restarts_at_the_member_the_decode_stopped_inside() -> None:
    window = two_clip_window()  # b's speech at window 6-9 s
    assert window.tail(5.0).origin_s == 5.0  # in the gap: from there
    assert window.tail(7.0).origin_s == 6.0  # inside b: from b's start
    assert window.tail(8.8).origin_s == 8.8  # at b's very end: b is done
    assert window.tail(7.0).tail(0.5).origin_s == 6.5  # already restarted at b: go on


def test_a_decode_gives_nothing_to_the_member_its_continuation_decodes_again() -> None:
    window = two_clip_window()
    first = decoded(window, [ts(0.0), 1, ts(3.0), ts(6.8), 2, ts(7.0), EOT])  # skipped b's start
    rest = decoded(window.tail(7.0), [ts(0.0), 3, 2, ts(1.0), EOT])  # b again, from window 6.0
    shares = split_window([first, rest], Tokenizer(), no_alignment)
    assert [s.text for s in shares[0]] == ["w1"]
    assert [(s.start_s, s.end_s, s.text) for s in shares[1]] == [(0.0, 1.0, "w3 w2")]


def test_an_empty_skipped_or_repetitive_share_is_suspect() -> None:
    def segment(text: str) -> Segment:
        return Segment(0.0, 1.0, text, -0.1, 0.0, 1.0)

    assert share_is_suspect([], 3.0, 2.4)
    assert share_is_suspect([segment("he")], 6.0, 2.4)  # a stray word for 6 s of speech
    assert share_is_suspect([segment("the end " * 40)], 12.0, 2.4)
    assert not share_is_suspect([segment("A gold ring will please most any girl.")], 3.0, 2.4)
    assert not share_is_suspect([segment("Yes.")], 3.0, 2.4)


def test_members_whose_share_looks_wrong_are_decoded_alone() -> None:
    """`shares`: a window decoded only after a fallback sends every member alone; otherwise
    only a member whose share is suspect (here b: no text for its 3 s of speech)."""
    window = two_clip_window()
    tokens = [ts(0.0), 1, 2, 1, 2, ts(3.8), EOT]
    config = DecodeConfig(timestamps="tokens")
    found = shares([decoded(window, tokens)], config, Tokenizer(), no_alignment)
    assert found[0] is not None and [s.text for s in found[0]] == ["w1 w2 w1 w2"]
    assert found[1] is None
    assert shares([decoded(window, tokens, temperature=0.2)], config, Tokenizer(),
                  no_alignment) == [None, None]
