"""Long recordings (issue 14): silence and noise give `empty` rows in every timestamps mode, and
a long file made of real clips loses no phrase at chunk edges (real tiny.en model)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile

from engine import BatchConfig, DecodeConfig, ModelConfig, RunConfig, TranscribeConfig, transcribe
from engine.config import VadConfig

MODES = [DecodeConfig(timestamps=t, word_timestamps=True, condition_on_previous_text=c)
         for t in ("aligned", "tokens", "none") for c in (False, True)]


def run(manifest: str, out: str, model_path: str, decode: DecodeConfig,
        vad: bool = True) -> dict:
    config = TranscribeConfig(manifest=manifest, output=out,
                              model=ModelConfig(path=model_path, device="cpu"),
                              batch=BatchConfig(batch_size=4), decode=decode,
                              vad=VadConfig(enabled=vad), run=RunConfig(workers=0))
    return transcribe(config)


@pytest.fixture(scope="module")
def silence_and_noise(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("quiet")
    rng = np.random.default_rng(14)
    soundfile.write(folder / "silence.flac", np.zeros(60 * 16000, dtype=np.float32), 16000)
    noise = rng.normal(0.0, 0.1, 60 * 16000).astype(np.float32)
    soundfile.write(folder / "noise.flac", noise, 16000)
    manifest = str(folder / "m.parquet")
    pq.write_table(pa.table({"id": ["silence", "noise"],
                             "path": [str(folder / "silence.flac"),
                                      str(folder / "noise.flac")]}), manifest)
    return manifest


@pytest.mark.parametrize("decode", MODES,
                         ids=lambda d: f"{d.timestamps}-conditioned-{d.condition_on_previous_text}")
def test_silence_and_white_noise_are_empty(silence_and_noise, model_path, read_rows, tmp_path,
                                           decode) -> None:
    report = run(silence_and_noise, str(tmp_path / "out"), model_path, decode)
    rows = read_rows(str(tmp_path / "out"))
    assert report["counts"] == {"ok": 0, "empty": 2, "error": 0}
    for row_id in ("silence", "noise"):
        assert_empty(rows[row_id])


@pytest.mark.parametrize("decode", [d for d in MODES if d.condition_on_previous_text],
                         ids=lambda d: d.timestamps)
def test_white_noise_without_vad_is_judged_silent_by_the_model(silence_and_noise, model_path,
                                                               read_rows, tmp_path,
                                                               decode) -> None:
    """Without VAD the model sees two 30 s windows of noise and must judge them silent."""
    run(silence_and_noise, str(tmp_path / "out"), model_path, decode, vad=False)
    assert_empty(read_rows(str(tmp_path / "out"))["noise"])


def assert_empty(row: dict) -> None:
    assert row["status"] == "empty" and row["text"] == ""
    assert not row["segments"] and not row["words"]
    assert row["duration_s"] == pytest.approx(60.0, abs=0.01)
