"""Long files in windows: the same samples, speech spans and chunk features as the whole-file path
(real clips looped into a long recording), and features spilled to disk and read back once."""

from __future__ import annotations

import os
import pickle

import faster_whisper.vad as fw_vad
import numpy as np
import pytest
import soundfile

from engine.config import VadConfig
from engine.errors import AudioDecodeError
from engine.prepare.audio import decode
from engine.prepare.stage import Preparer
from engine.prepare.vad import MAX_SPAN_S, SpeechDetector, speech_stamps
from engine.prepare.windows import WINDOW_SAMPLES, SampleCutter, decode_windows, probe_duration_s
from engine.types import AudioItem, PreparedItem, SpeechSpan


@pytest.fixture(scope="module")
def speech(clips) -> np.ndarray:
    """The real clips in turn, 5 s of silence after each, at 16 kHz."""
    pause = np.zeros(5 * 16000, dtype=np.float32)
    return np.concatenate([part for c in clips
                           for part in (decode(AudioItem(c["id"], path=c["path"])), pause)])


@pytest.fixture(scope="module")
def long_flac(speech, tmp_path_factory) -> str:
    """A recording of 1.1 windows (352 s): VAD and chunks cross a window boundary."""
    path = str(tmp_path_factory.mktemp("long") / "long.flac")
    size = int(1.1 * WINDOW_SAMPLES) + 123
    soundfile.write(path, np.tile(speech, size // speech.size + 1)[:size], 16000)
    return path


def test_windows_hold_the_whole_file_samples(long_flac) -> None:
    item = AudioItem("a", path=long_flac)
    windows = list(decode_windows(item, window=1_000_000))
    assert [w.size for w in windows[:-1]] == [1_000_000] * (len(windows) - 1)
    assert 0 < windows[-1].size <= 1_000_000
    assert np.array_equal(np.concatenate(windows), decode(item))


@pytest.mark.parametrize("start_s,end_s", [(1.3, 9.71), (0.0, None), (0.5, 1e6)])
def test_windows_of_a_region_and_of_ffmpeg_formats_match(clips, start_s, end_s) -> None:
    for clip in clips:  # FLAC, WAV at 8 kHz (resampled by FFmpeg), MP3
        item = AudioItem(clip["id"], path=clip["path"], start_s=start_s, end_s=end_s)
        whole = decode(item)
        assert np.array_equal(np.concatenate(list(decode_windows(item, window=7919))), whole)
        assert probe_duration_s(item) == pytest.approx(whole.size / 16000, abs=0.06)


def test_windowed_decode_reports_broken_files_as_the_whole_file_path_does(broken_files) -> None:
    for name in ("empty", "truncated", "not_audio", "missing"):
        item = AudioItem(name, path=broken_files[name])
        with pytest.raises(AudioDecodeError) as whole:
            decode(item)
        with pytest.raises(AudioDecodeError) as windowed:
            list(decode_windows(item))
        # the same words; only FFmpeg's own detail names the file instead of '<none>'
        assert str(windowed.value).split(": ")[:2] == str(whole.value).split(": ")[:2], name
        assert str(windowed.value).endswith(str(whole.value)[-30:]), name
        assert probe_duration_s(item) is None or name == "truncated"


def test_cutter_cuts_what_slicing_cuts_across_windows() -> None:
    samples = np.arange(10_000, dtype=np.float32)
    cutter = SampleCutter(iter([samples[i: i + 999] for i in range(0, samples.size, 999)]))
    for start, end in [(0, 10), (10, 10), (500, 2500), (2500, 2501), (6000, 12_000),
                       (11_000, 12_000)]:
        assert np.array_equal(cutter.cut(start, end), samples[start:end]), (start, end)
    with pytest.raises(ValueError, match="goes back"):
        cutter.cut(100, 200)


def faster_whisper_spans(samples: np.ndarray) -> list[SpeechSpan]:
    """The spans faster-whisper's own VAD finds on audio held whole (engine defaults)."""
    options = fw_vad.VadOptions(min_silence_duration_ms=2000, speech_pad_ms=400,
                                max_speech_duration_s=MAX_SPAN_S)
    return [SpeechSpan(s["start"] / 16000, s["end"] / 16000)
            for s in fw_vad.get_speech_timestamps(samples, options)]


def test_windowed_vad_finds_the_whole_file_spans(long_flac) -> None:
    detector = SpeechDetector(VadConfig(rescue=False))  # Silero's own spans: faster-whisper's
    whole = decode(AudioItem("a", path=long_flac))
    speech = detector.find(decode_windows(AudioItem("a", path=long_flac)))
    assert speech.total_samples == whole.size
    assert speech.spans == faster_whisper_spans(whole) and len(speech.spans) > 20


def test_windowed_vad_of_exactly_one_window(speech) -> None:
    """A length of whole windows: faster-whisper's extra padding frame is its own model call."""
    audio = np.tile(speech, WINDOW_SAMPLES // speech.size + 1)[:WINDOW_SAMPLES]
    found = SpeechDetector(VadConfig(rescue=False)).find([audio])
    assert (found.total_samples, found.spans) == (audio.size, faster_whisper_spans(audio))


@pytest.mark.parametrize("seed", range(6))
def test_span_rules_equal_faster_whispers_on_any_probabilities(monkeypatch, seed) -> None:
    """Speech that runs past 30 s (forced cuts), short pauses and flicker around the thresholds."""
    rng = np.random.default_rng(seed)
    levels = rng.choice([0.05, 0.3, 0.45, 0.6, 0.95], size=rng.integers(20, 60))
    probs = np.repeat(levels, rng.integers(1, 400, size=levels.size)).astype(np.float32)
    total = probs.size * 512 - int(rng.integers(1, 512))
    monkeypatch.setattr(fw_vad, "get_vad_model", lambda: lambda audio: probs)
    options = fw_vad.VadOptions(min_silence_duration_ms=int(rng.choice([100, 500, 2000])),
                                min_speech_duration_ms=int(rng.choice([0, 250])),
                                max_speech_duration_s=MAX_SPAN_S)
    expected = fw_vad.get_speech_timestamps(np.zeros(total, dtype=np.float32), options)
    assert speech_stamps(probs, total, options, 16000) == [(s["start"], s["end"])
                                                            for s in expected]
    assert any(e - s > 29 * 16000 for s, e in speech_stamps(probs, total, options, 16000)) \
        or seed % 2


def test_spilled_chunks_load_the_whole_file_features_once(long_flac, tmp_path) -> None:
    item = AudioItem("long", path=long_flac)
    whole = Preparer(VadConfig(), 80, stream_above_s=None)(item)
    streamed = Preparer(VadConfig(), 80, str(tmp_path), stream_above_s=300.0)(item)
    assert isinstance(whole, PreparedItem) and isinstance(streamed, PreparedItem)
    assert streamed.chunks[0].spilled is None  # language detection reads the first chunk
    assert all(c.spilled is not None and c.features.size == 0 for c in streamed.chunks[1:])
    assert len(os.listdir(tmp_path)) == 1
    received = pickle.loads(pickle.dumps(streamed))  # as the decode worker sends it
    assert (received.duration_s, received.speech_s) == (whole.duration_s, whole.speech_s)
    loaded = [c.loaded() for c in received.chunks]
    assert os.listdir(tmp_path) == []  # the reader removed the name when it opened the file
    assert len(loaded) == len(whole.chunks) > 5
    for mine, theirs in zip(loaded, whole.chunks, strict=True):
        assert mine.spans == theirs.spans and mine.spilled is None
        assert np.array_equal(mine.features, theirs.features)
