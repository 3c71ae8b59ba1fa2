"""What a run tells its user (issue 28): the failed rows at the end and `batchscribe errors`,
progress lines in a log, and the one-line messages of a rerun, a job file and a model folder."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from engine.cli import cli

BROKEN = 12


@pytest.fixture(scope="module")
def run_with_errors(clips, model_path, tmp_path_factory) -> tuple[str, str]:
    """A real run of one clip and 12 files that are not audio; its stderr."""
    folder = tmp_path_factory.mktemp("errors")
    paths = []
    for n in range(BROKEN):
        path = folder / f"notes-{n:02d}.wav"
        path.write_text(f"not audio {n}\n" * 40)
        paths.append(str(path))
    short = min(clips, key=lambda c: float(c["duration_s"]))
    pq.write_table(pa.table({"id": [short["id"], *(os.path.basename(p) for p in paths)],
                             "path": [short["path"], *paths]}), folder / "m.parquet")
    out = str(folder / "out")
    result = CliRunner().invoke(cli, ["transcribe", str(folder / "m.parquet"), "-o", out,
                                      "-j", "0", "-q"])
    assert result.exit_code == 3, result.output
    return out, result.stderr


def test_the_end_of_a_run_lists_its_error_rows(run_with_errors) -> None:
    out, stderr = run_with_errors
    lines = stderr.strip().splitlines()
    start = lines.index(f"{BROKEN} error rows in {out}:")
    listed = lines[start + 1:start + 11]
    assert all(re.fullmatch(r"  notes-\d\d\.wav \(permanent\): .+", line) for line in listed)
    assert lines[start + 11] == f"  ... 2 more: batchscribe errors {out}"


def test_errors_command_prints_every_error_row(run_with_errors) -> None:
    out, _ = run_with_errors
    result = CliRunner().invoke(cli, ["errors", out])
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert sorted(r[0] for r in rows) == [f"notes-{n:02d}.wav" for n in range(BROKEN)]
    assert {r[1] for r in rows} == {"permanent"} and all(r[2] for r in rows)
    assert result.stderr.strip() == f"{BROKEN} error rows"
    listing = json.loads(CliRunner().invoke(cli, ["errors", out, "-n", "3", "--json"]).stdout)
    assert listing["total"] == BROKEN and len(listing["rows"]) == 3
    assert set(listing["rows"][0]) == {"id", "kind", "message"}


def test_a_rerun_with_nothing_to_do_says_so(run_with_errors) -> None:
    out, _ = run_with_errors
    manifest = os.path.join(os.path.dirname(out), "m.parquet")
    result = CliRunner().invoke(cli, ["transcribe", manifest, "-o", out, "-j", "0", "-q"])
    assert result.exit_code == 0, result.output
    assert result.stderr.strip().splitlines()[-1] == (
        f"nothing to do: all {BROKEN + 1} rows of the manifest are already in {out}")


def test_progress_lines_when_stderr_is_not_a_terminal(clips, model_path, tmp_path) -> None:
    # issue 28: nothing at all until the last line, in a log or under nohup
    short = sorted(clips, key=lambda c: float(c["duration_s"]))[:3]
    manifest = tmp_path / "m.parquet"
    pq.write_table(pa.table({"id": [c["id"] for c in short], "path": [c["path"] for c in short]}),
                   manifest)
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "transcribe", str(manifest), "-o", str(tmp_path / "o"),
         "-j", "1", "--model", model_path, "--progress-every", "0.1"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith(f"batchscribe: loading the model {model_path} (cpu, int8)")
    assert lines[1] == "batchscribe: model loaded; 3 rows to transcribe (0 of 3 already done)"
    progress = [line for line in lines if line.startswith("batchscribe: progress: ")]
    assert progress, proc.stderr
    pattern = (r"batchscribe: progress: (\d)/3 rows \(\d+%\), \d+\.\d\d h of audio, "
               r"\d+\.\dx realtime, 0 errors, ETA (\d+s|\d+m\d\ds)")
    assert all(re.fullmatch(pattern, line) for line in progress), progress
    assert "\r" not in proc.stderr  # no bar redrawn in the log
    one = tmp_path / "one.parquet"
    pq.write_table(pa.table({"path": [short[0]["path"]]}), one)
    quiet = subprocess.run(
        [sys.executable, "-m", "engine", "transcribe", str(one), "-o", str(tmp_path / "q"),
         "-j", "0", "--model", model_path, "-q", "--progress-every", "0.1"],
        capture_output=True, text=True, timeout=300)
    assert "batchscribe:" not in quiet.stderr


def test_a_relative_manifest_in_a_job_file_says_where_it_is_taken_from(tmp_path,
                                                                        monkeypatch) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    pq.write_table(pa.table({"path": ["a.wav"]}), jobs / "m.parquet")
    (jobs / "job.toml").write_text('manifest = "m.parquet"\noutput = "out"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(cli, ["run", str(jobs / "job.toml")])
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert "a relative path in a job file is taken from the current folder" in line
    assert str(elsewhere) in line and f"run from {jobs}" in line
    assert not (elsewhere / "out").exists()


def test_an_unconverted_hugging_face_folder_names_convert(write_manifest, clips,
                                                          tmp_path) -> None:
    hf = tmp_path / "whisper-hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"model_type": "whisper", "d_model": 384}))
    # a safetensors file as the format defines it: header length, JSON header, tensor bytes
    header = json.dumps({"model.encoder.conv1.weight": {
        "dtype": "F32", "shape": [4, 80, 3], "data_offsets": [0, 4 * 80 * 3 * 4]}}).encode()
    (hf / "model.safetensors").write_bytes(
        struct.pack("<Q", len(header)) + header + bytes(4 * 80 * 3 * 4))
    manifest = write_manifest({"path": [clips[0]["path"]]})
    result = CliRunner().invoke(cli, ["transcribe", manifest, "-o", str(tmp_path / "out"),
                                      "--model", str(hf)])
    assert result.exit_code == 1
    line = result.output.strip().splitlines()[-1]
    assert "is a Hugging Face checkpoint, not a CTranslate2 model" in line
    assert f"batchscribe convert {hf} {hf}-ct2" in line
