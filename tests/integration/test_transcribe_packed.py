"""`--pack` with the real tiny.en model: short files share windows, each row stays its own."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile

from engine import BatchConfig, DecodeConfig, ModelConfig, RunConfig, TranscribeConfig, transcribe
from engine.corpus.evaluate import corpus_wer
from engine.errors import ConfigError
from engine.prepare.audio import decode
from engine.types import AudioItem

LONG = "osr_us_000_0034_8k"  # 35.5 s: more than one window, never packed


def two_speakers(clips: list[dict[str, str]], path: str) -> str:
    """Two speakers in one file: a woman (speechbrain), 1 s of silence, a man (LibriSpeech)."""
    parts = [decode(AudioItem(c["id"], c["path"])) for c in clips
             if c["id"] in ("speechbrain_spk1_snt1", "librispeech_61-70968-0000")]
    soundfile.write(path, np.concatenate([parts[1], np.zeros(16000, np.float32), parts[0]]),
                    16000)
    by_id = {c["id"]: c["reference_text"] for c in clips}
    return f"{by_id['speechbrain_spk1_snt1']} {by_id['librispeech_61-70968-0000']}"


@pytest.fixture(scope="module")
def packed_run(clips, model_path,
               tmp_path_factory, read_rows) -> tuple[dict[str, dict], dict, dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path_factory.mktemp("packed")
    refs = {c["id"]: c["reference_text"] for c in clips}
    refs["two_speakers"] = two_speakers(clips, str(folder / "two_speakers.wav"))
    paths = [c["path"] for c in clips] + [str(folder / "two_speakers.wav")]
    manifest = str(folder / "m.parquet")
    pq.write_table(pa.table({"id": list(refs), "path": paths}), manifest)
    config = TranscribeConfig(
        manifest=manifest, output=str(folder / "out"),
        model=ModelConfig(path=model_path, device="cpu"),
        batch=BatchConfig(batch_size=4, pack=True), run=RunConfig(workers=0))
    report = transcribe(config)
    return read_rows(str(folder / "out")), report, refs


def test_short_files_share_windows_and_long_ones_never_do(packed_run) -> None:
    rows, report, refs = packed_run
    timings = report["timings"]
    short = len(refs) - 1
    assert timings["packed_chunks"] == short  # every file but the long one
    assert 1 <= timings["packed_windows"] <= short // 2
    assert report["counts"] == {"ok": len(refs), "empty": 0, "error": 0}
    long_text = rows[LONG]["text"].lower()
    for phrase in ("ring will please", "long journey", "called his name", "hear the bell"):
        assert phrase in long_text


def test_each_row_keeps_its_own_words_and_times(packed_run) -> None:
    rows, _, refs = packed_run
    ids = list(refs)
    wer = corpus_wer([refs[i] for i in ids], [rows[i]["text"] for i in ids]).wer
    assert wer < 10.0, wer
    for i in ids:
        row = rows[i]
        assert row["language"] == "en"
        assert corpus_wer([refs[i]], [row["text"]]).wer <= 40.0, (i, row["text"])
        times = [(s["start_s"], s["end_s"]) for s in row["segments"]]
        assert times and all(0 <= a <= b <= row["duration_s"] + 0.01 for a, b in times), times


def test_a_file_with_two_speakers_keeps_all_its_words(packed_run) -> None:
    rows, _, refs = packed_run
    row = rows["two_speakers"]
    assert corpus_wer([refs["two_speakers"]], [row["text"]]).wer <= 15.0, row["text"]
    assert row["segments"][-1]["end_s"] > 4.9  # the second speaker starts after 5.9 s


@pytest.mark.parametrize("decode, message", [
    (DecodeConfig(timestamps="aligned"), "timestamp tokens"),
    (DecodeConfig(timestamps="none"), "timestamp tokens"),
    (DecodeConfig(word_timestamps=True), "word timestamps"),
])
def test_packing_needs_timestamp_tokens(tmp_path, decode, message) -> None:
    with pytest.raises(ConfigError, match=message):
        TranscribeConfig(manifest="m.parquet", output=str(tmp_path),
                         batch=BatchConfig(pack=True), decode=decode)
    assert DecodeConfig().resolved(pack=True).timestamps == "tokens"


EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "manifest.parquet")


@pytest.mark.parametrize("flags", [
    [], ["--beam-size", "1"], ["--timestamps", "tokens"], ["--no-condition-on-previous-text"],
])
def test_pack_with_vad_runs_the_example_manifest(tmp_path, read_rows, flags) -> None:
    """Regression (issue 28): `transcribe examples/manifest.parquet --pack` crashed with VAD on:
    a packed window's decode stopped early and its continuation assumed a plain chunk."""
    import pyarrow.parquet as pq
    from click.testing import CliRunner

    from engine.cli import cli

    out = str(tmp_path / "out")
    result = CliRunner().invoke(cli, ["transcribe", EXAMPLES, "-o", out, "--pack", "-j", "0",
                                      "--json", *flags])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["timings"]["packed_windows"] >= 1  # the short files did share windows
    rows = read_rows(out)
    refs = dict(zip(*pq.read_table(EXAMPLES, columns=["id", "reference"]).to_pydict().values(),
                    strict=True))
    assert set(rows) == set(refs) and all(row["status"] == "ok" for row in rows.values())
    ids = sorted(refs)
    wer = corpus_wer([refs[i] for i in ids], [rows[i]["text"] for i in ids]).wer
    assert wer < 15.0, {i: rows[i]["text"] for i in ids}
