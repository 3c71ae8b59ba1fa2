import pytest

from engine.decode.assemble import split_segments

TS = 1000  # timestamp_begin in these made-up token ids
EOT = 999


def ts(seconds: float) -> int:
    return TS + int(round(seconds / 0.02))


def test_closed_segments() -> None:
    tokens = (ts(0), 1, 2, ts(2), ts(2), 3, ts(4.5))
    assert split_segments(tokens, TS, EOT, 10.0) == [(0.0, 2.0, [1, 2]), (2.0, 4.5, [3])]


def test_text_after_the_last_timestamp_runs_to_the_chunk_end() -> None:
    tokens = (ts(0), 1, ts(3), 2, 3)
    assert split_segments(tokens, TS, EOT, 7.0) == [(0.0, 3.0, [1]), (3.0, 7.0, [2, 3])]


def test_no_timestamps_is_one_segment() -> None:
    assert split_segments((5, 6, EOT), TS, EOT, 4.2) == [(0.0, 4.2, [5, 6])]


def test_times_are_clamped_to_the_chunk() -> None:
    (start, end, _), = split_segments((ts(1), 7, ts(29.9)), TS, EOT, 12.0)
    assert (start, end) == (pytest.approx(1.0), 12.0)


def test_timestamps_without_text_make_no_segment() -> None:
    assert split_segments((ts(0), ts(1), ts(1)), TS, EOT, 5.0) == []
