import numpy as np
import pytest

from engine.prepare.chunking import plan_chunks, split_long_spans
from engine.types import Chunk, SpeechSpan


def spans(*pairs: tuple[float, float]) -> list[SpeechSpan]:
    return [SpeechSpan(a, b) for a, b in pairs]


def test_spans_merge_up_to_the_window() -> None:
    chunks = plan_chunks(spans((0, 10), (12, 22), (25, 35), (40, 41)))
    assert [[(s.start_s, s.end_s) for s in c] for c in chunks] == [
        [(0, 10), (12, 22), (25, 35)], [(40, 41)]]


def test_a_chunk_never_holds_more_than_30_s_of_speech() -> None:
    chunks = plan_chunks(spans((0, 20), (21, 32), (33, 70)))
    assert all(sum(s.duration_s for s in c) <= 30.0 + 1e-9 for c in chunks)
    covered = sum(s.duration_s for c in chunks for s in c)
    assert covered == pytest.approx(20 + 11 + 37)


def test_long_span_is_split_not_trimmed() -> None:
    pieces = split_long_spans(spans((5, 75)))
    assert [(p.start_s, p.end_s) for p in pieces] == [(5, 35), (35, 65), (65, 75)]


def test_no_spans_no_chunks() -> None:
    assert plan_chunks([]) == []


def test_chunk_time_maps_back_to_source_across_gaps() -> None:
    chunk = Chunk("a", 0, tuple(spans((2, 4), (10, 13))), np.zeros((80, 3000), np.float32))
    assert chunk.to_source_time(0.0) == pytest.approx(2.0)
    assert chunk.to_source_time(1.5) == pytest.approx(3.5)
    assert chunk.to_source_time(2.5) == pytest.approx(10.5)
    assert chunk.to_source_time(99.0) == pytest.approx(13.0)


def test_tail_shifts_features_and_cuts_spans() -> None:
    features = np.tile(np.arange(3000, dtype=np.float32), (80, 1))
    chunk = Chunk("a", 3, tuple(spans((2, 4), (10, 13))), features)
    tail = chunk.tail(2.5)
    assert [(s.start_s, s.end_s) for s in tail.spans] == [(10.5, 13)]
    assert tail.index == 3
    assert tail.features[0, 0] == 250 and tail.features[0, 2749] == 2999
    assert not tail.features[:, 2750:].any()
