"""The command line: help, exit codes (0, 1, 2, 3), --json, kill-and-resume in real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.dataset as ds
from click.testing import CliRunner

from engine.cli import cli
from engine.io.runlog import latest_record


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_help_lists_commands_and_examples() -> None:
    result = invoke("--help")
    assert result.exit_code == 0 and "transcribe" in result.output
    result = invoke("transcribe", "-h")
    assert result.exit_code == 0 and "Example" in result.output and "--max-errors" in result.output


def test_help_is_fast_and_imports_no_model_library() -> None:
    code = ("import sys, time; t=time.time(); from engine.cli import cli; "
            "assert 'ctranslate2' not in sys.modules and 'faster_whisper' not in sys.modules; "
            "print(time.time()-t)")
    elapsed = float(subprocess.check_output([sys.executable, "-c", code]).decode())
    assert elapsed < 5


def test_usage_error_exits_2(write_manifest) -> None:
    manifest = write_manifest({"path": ["a.wav"]})
    result = invoke("transcribe", manifest, "-o", "out", "--shard", "5/2")
    assert result.exit_code == 2 and "need 0 <= I < N" in result.output


def test_bad_manifest_exits_1_with_one_line(write_manifest, tmp_path) -> None:
    manifest = write_manifest({"id": ["a", "a"], "path": ["a.wav", "b.wav"]})
    result = invoke("transcribe", manifest, "-o", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: manifest has duplicate id 'a'; ids must be unique "
        "(add an 'id' column, or remove the repeated rows)")


def test_missing_columns_exit_1(write_manifest, tmp_path) -> None:
    manifest = write_manifest({"file": ["a.wav"]})
    result = invoke("transcribe", manifest, "-o", str(tmp_path / "out"))
    assert result.exit_code == 1 and "no 'path' or 'audio' column" in result.output


def test_bad_model_folder_exits_1(write_manifest, tmp_path, clips) -> None:
    folder = tmp_path / "not_a_model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    manifest = write_manifest({"path": [clips[0]["path"]]})
    result = invoke("transcribe", manifest, "-o", str(tmp_path / "out"), "--model", str(folder))
    assert result.exit_code == 1
    assert "is not a CTranslate2 Whisper model folder: missing model.bin" in result.output


def test_unknown_model_name_fails_fast_offline(write_manifest, tmp_path, clips) -> None:
    manifest = write_manifest({"path": [clips[0]["path"]]})
    started = time.monotonic()
    result = invoke("transcribe", manifest, "-o", str(tmp_path / "out"), "--model",
                    "no-such-whisper-size")
    assert result.exit_code == 1 and "could not be fetched" in result.output
    assert time.monotonic() - started < 60


def test_item_errors_exit_3_and_json_summary(write_manifest, tmp_path, clips, broken_files,
                                             model_path) -> None:
    manifest = write_manifest({"id": ["ok", "bad"],
                               "path": [clips[0]["path"], broken_files["not_audio"]]})
    result = invoke("transcribe", manifest, "-o", str(tmp_path / "out"), "--json", "-j", "0")
    assert result.exit_code == 3, result.output
    report = json.loads(result.stdout)
    assert report["counts"] == {"ok": 1, "empty": 0, "error": 1}
    assert report["model"]["compute_type"] == "int8" and report["versions"]["ctranslate2"]
    assert latest_record(str(tmp_path / "out"))["counts"] == report["counts"]


def test_error_budget_stops_the_run_with_exit_1(write_manifest, tmp_path, broken_files) -> None:
    bad = [broken_files["not_audio"], broken_files["empty"], broken_files["missing"]]
    manifest = write_manifest({"id": ["a", "b", "c"], "path": bad})
    result = invoke("transcribe", manifest, "-o", str(tmp_path / "out"), "--max-errors", "1",
                    "-j", "0")
    assert result.exit_code == 1 and "error budget" in result.output
    assert "--max-errors" in result.output


def test_success_exits_0(write_manifest, tmp_path, clips) -> None:
    manifest = write_manifest({"path": [clips[0]["path"]]})
    result = invoke("transcribe", manifest, "-o", str(tmp_path / "out"), "-j", "0")
    assert result.exit_code == 0, result.output


def test_sigkill_mid_run_then_rerun_gives_every_id_exactly_once(write_manifest, tmp_path,
                                                                clips) -> None:
    ids = [f"{c['id']}-{n}" for n in range(6) for c in clips]
    paths = [c["path"] for _ in range(6) for c in clips]
    manifest = write_manifest({"id": ids, "path": paths})
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "engine", "transcribe", manifest, "-o", str(out), "-q",
           "--rows-per-part", "3", "--beam-size", "1", "-j", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        parts = [n for n in os.listdir(out) if n.startswith("part-")] if out.exists() else []
        if len(parts) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = ds.dataset(str(out), format="parquet", exclude_invalid_files=True).count_rows()
    assert 0 < done_before < len(ids)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    table = ds.dataset(str(out), format="parquet", exclude_invalid_files=True).to_table()
    written = table.column("id").to_pylist()
    assert sorted(written) == sorted(ids)
    assert set(table.column("status").to_pylist()) == {"ok"}
    assert latest_record(str(out))["skipped_already_done"] == done_before
