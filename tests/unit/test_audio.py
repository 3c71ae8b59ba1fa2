import os

import numpy as np
import pytest

from engine.errors import AudioDecodeError
from engine.prepare.audio import SAMPLE_RATE_HZ, decode
from engine.types import AudioItem


@pytest.mark.parametrize("name", [
    "speechbrain_spk1_snt1.wav", "osr_us_000_0034_8k.wav", "librispeech_61-70968-0000.flac",
    "ljspeech_LJ001-0006.mp3",
])
def test_real_clips_decode_to_16k_mono_float32(clips, name) -> None:
    clip = next(c for c in clips if c["file"] == name)
    samples = decode(AudioItem(clip["id"], clip["path"]))
    assert samples.dtype == np.float32 and samples.ndim == 1
    # mp3 decoders add a few ms of priming/padding; others are exact to a sample or two
    assert samples.size / SAMPLE_RATE_HZ == pytest.approx(float(clip["duration_s"]), abs=0.06)
    assert 0.01 < np.abs(samples).max() <= 1.0


def test_bytes_decode_like_the_file(clips) -> None:
    clip = next(c for c in clips if c["file"].endswith(".mp3"))
    with open(clip["path"], "rb") as f:
        from_bytes = decode(AudioItem("b", audio_bytes=f.read()))
    np.testing.assert_array_equal(from_bytes, decode(AudioItem("f", clip["path"])))


def test_region_is_cut(clips) -> None:
    clip = next(c for c in clips if c["file"] == "osr_us_000_0034_8k.wav")
    part = decode(AudioItem("r", clip["path"], start_s=2.0, end_s=5.5))
    assert part.size == int(3.5 * SAMPLE_RATE_HZ)


@pytest.mark.parametrize("kind,message", [
    ("empty", "is empty"), ("truncated", "truncated"), ("not_audio", "cannot decode"),
    ("missing", "file not found"),
])
def test_broken_files_raise_a_clear_error(broken_files, kind, message) -> None:
    with pytest.raises(AudioDecodeError, match=message) as error:
        decode(AudioItem(kind, broken_files[kind]))
    assert os.path.basename(broken_files[kind]) in str(error.value)
    assert error.value.item_id == kind


def test_a_mislabeled_file_is_decoded_by_its_content(broken_files) -> None:
    assert decode(AudioItem("m", broken_files["mislabeled"])).size > 0


def test_empty_region_is_an_error(clips) -> None:
    with pytest.raises(AudioDecodeError, match="region"):
        decode(AudioItem("r", clips[0]["path"], start_s=4.0, end_s=2.0))
