"""Issue 27 items 3 and 7: damaged audio and paths that are no audio file are errors that say
what they are, never a plain `ok` row or a transient "file not found".

Every input is made from a real clip of tests/data at run time: float WAVs with a NaN, an Inf or
a gain of 1e6, MP3 and Ogg (Vorbis, Opus) files cut in the middle, a folder, a FIFO, a symlink
loop, an empty path. Both decoders are checked: the whole-file one and the windowed one used for
long recordings.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable

import numpy as np
import pytest
import soundfile as sf

from engine.errors import AudioDecodeError
from engine.failure_kind import failure_kind
from engine.prepare.audio import decode
from engine.prepare.windows import decode_windows
from engine.types import AudioItem

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
SPEECH = os.path.join(DATA, "librispeech_61-70968-0000.flac")


def _whole(item: AudioItem) -> None:
    decode(item)


def _windowed(item: AudioItem) -> None:
    for _ in decode_windows(item, window=16000):
        pass


DECODERS: list[Callable[[AudioItem], None]] = [_whole, _windowed]


def _float_wav(path: str, samples: np.ndarray, rate: int = 16000) -> str:
    sf.write(path, samples.astype(np.float32), rate, subtype="FLOAT")
    return path


def _cut(source: str, target: str, fraction: float = 0.5) -> str:
    with open(source, "rb") as f:
        data = f.read()
    with open(target, "wb") as f:
        f.write(data[: int(len(data) * fraction)])
    return target


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    samples, rate = sf.read(SPEECH, dtype="float32")
    assert rate == 16000
    return np.asarray(samples)


@pytest.fixture
def damaged(tmp_path, speech) -> dict[str, str]:
    nan, inf = speech.copy(), speech.copy()
    nan[len(nan) // 2] = np.nan
    inf[100] = np.inf
    ogg_vorbis, ogg_opus = str(tmp_path / "full.ogg"), str(tmp_path / "full.opus")
    sf.write(ogg_vorbis, speech, 16000, format="OGG", subtype="VORBIS")
    sf.write(ogg_opus, speech, 16000, format="OGG", subtype="OPUS")
    return {
        "nan": _float_wav(str(tmp_path / "nan.wav"), nan),
        "inf": _float_wav(str(tmp_path / "inf.wav"), inf),
        "loud": _float_wav(str(tmp_path / "loud.wav"), speech * 1e6),
        "loud_resampled": _float_wav(str(tmp_path / "loud22k.wav"),
                                     np.repeat(speech, 2) * 1e6, 32000),
        "mp3_with_header": _cut(os.path.join(DATA, "ljspeech_LJ001-0006.mp3"),
                                str(tmp_path / "lj_cut.mp3")),
        "mp3_cbr": _cut(os.path.join(DATA, "common_voice_en_22058266.mp3"),
                        str(tmp_path / "cv_cut.mp3"), 0.51),
        "ogg_vorbis": _cut(ogg_vorbis, str(tmp_path / "cut.ogg")),
        "ogg_opus": _cut(ogg_opus, str(tmp_path / "cut.opus")),
        "ogg_vorbis_whole": ogg_vorbis,
        "ogg_opus_whole": ogg_opus,
    }


@pytest.mark.parametrize("run", DECODERS)
@pytest.mark.parametrize("kind,message", [
    ("nan", "NaN or infinite"), ("inf", "NaN or infinite"), ("loud", "far past full scale"),
    ("loud_resampled", "clipped at full scale"), ("mp3_with_header", "truncated"),
    ("mp3_cbr", "truncated"), ("ogg_vorbis", "truncated"), ("ogg_opus", "truncated"),
])
def test_damaged_audio_is_a_permanent_error_not_ok(damaged, run, kind, message) -> None:
    with pytest.raises(AudioDecodeError, match=message) as error:
        run(AudioItem(kind, damaged[kind]))
    assert os.path.basename(damaged[kind]) in str(error.value)
    assert failure_kind(error.value) == "permanent"
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("kind", ["ogg_vorbis_whole", "ogg_opus_whole"])
def test_whole_ogg_files_still_decode(damaged, speech, kind) -> None:
    samples = decode(AudioItem(kind, damaged[kind]))
    assert samples.size / 16000 == pytest.approx(speech.size / 16000, abs=0.1)


def test_real_mp3_flac_wav_clips_of_the_corpus_pass_the_checks(clips) -> None:
    for clip in clips:
        assert decode(AudioItem(clip["id"], clip["path"])).size > 0


def test_damaged_audio_bytes_are_refused_too(damaged) -> None:
    with open(damaged["ogg_opus"], "rb") as f:
        data = f.read()
    with pytest.raises(AudioDecodeError, match="truncated"):
        decode(AudioItem("bytes", audio_bytes=io.BytesIO(data).getvalue()))


@pytest.fixture
def not_files(tmp_path) -> dict[str, str]:
    folder = tmp_path / "a_folder.wav"
    folder.mkdir()
    fifo = str(tmp_path / "pipe.wav")
    os.mkfifo(fifo)
    loop = str(tmp_path / "loop.wav")
    os.symlink(loop, loop)
    return {"folder": str(folder), "fifo": fifo, "loop": loop, "empty": ""}


@pytest.mark.parametrize("run", DECODERS)
@pytest.mark.parametrize("kind,message", [
    ("folder", "is a folder, not an audio file"), ("fifo", "is a FIFO"),
    ("loop", "is a symlink loop"), ("empty", "has an empty path"),
])
def test_paths_that_are_no_audio_file_say_what_they_are_and_are_permanent(
        not_files, run, kind, message) -> None:
    with pytest.raises(AudioDecodeError, match=message) as error:
        run(AudioItem(kind, not_files[kind]))
    assert failure_kind(error.value) == "permanent"


def test_a_missing_file_stays_transient(tmp_path) -> None:
    with pytest.raises(AudioDecodeError, match="file not found") as error:
        decode(AudioItem("gone", str(tmp_path / "gone.wav")))
    assert failure_kind(error.value) == "transient"
