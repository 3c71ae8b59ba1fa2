"""Failures that heal: error rows carry a kind, a rerun retries the transient ones (all of them with
`--retry-errors`), and a retried row replaces its error row, kills during the retry included.

Real clips, the real tiny.en model, real processes killed with SIGKILL.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pyarrow.dataset as ds

from engine import DecodeConfig, ModelConfig, RunConfig, TranscribeConfig, transcribe
from engine.io.retry import settle
from engine.io.writer import part_files


def run(manifest: str, out: str, model_path: str, **run_options: object) -> dict:
    config = TranscribeConfig(manifest=manifest, output=out,
                              model=ModelConfig(path=model_path, device="cpu"),
                              decode=DecodeConfig(beam_size=1),
                              run=RunConfig(**{"workers": 0, **run_options}))  # type: ignore[arg-type]
    return transcribe(config)


def all_rows(out: str) -> list[dict]:
    return ds.dataset(out, format="parquet", exclude_invalid_files=True).to_table().to_pylist()


def test_transient_rows_heal_on_rerun_and_retry_errors_retries_the_rest(
        clips, broken_files, model_path, write_manifest, tmp_path, read_rows) -> None:
    later = str(tmp_path / "arrives_later.wav")  # missing now, there by the rerun
    manifest = write_manifest({"id": ["good", "later", "not_audio"],
                               "path": [clips[0]["path"], later, broken_files["not_audio"]]})
    out = str(tmp_path / "out")
    run(manifest, out, model_path)
    rows = read_rows(out)
    assert rows["good"]["status"] == "ok" and rows["good"]["error_kind"] is None
    assert (rows["later"]["status"], rows["later"]["error_kind"]) == ("error", "transient")
    assert (rows["not_audio"]["status"], rows["not_audio"]["error_kind"]) == ("error", "permanent")

    shutil.copy(clips[1]["path"], later)
    report = run(manifest, out, model_path)
    rows = read_rows(out)  # asserts each id once
    assert sorted(rows) == ["good", "later", "not_audio"]
    assert rows["later"]["status"] == "ok" and rows["later"]["text"]
    assert rows["not_audio"]["error_kind"] == "permanent"
    assert report["counts"] == {"ok": 1, "empty": 0, "error": 0}  # only `later` was redone

    report = run(manifest, out, model_path, retry_errors=True)
    assert report["counts"]["error"] == 1  # not_audio tried again, and still not audio
    assert sorted(r["id"] for r in all_rows(out)) == ["good", "later", "not_audio"]


def test_settle_finishes_a_rewrite_killed_between_rename_and_delete(
        clips, model_path, write_manifest, tmp_path) -> None:
    later = [str(tmp_path / f"later{n}.wav") for n in range(3)]
    ids = ["good", "later0", "later1", "later2"]
    manifest = write_manifest({"id": ids, "path": [clips[0]["path"], *later]})
    out = str(tmp_path / "out")
    run(manifest, out, model_path)
    (old_part,) = part_files(out)
    saved = str(tmp_path / "old-part.parquet")
    shutil.copy(old_part, saved)
    for path in later:
        shutil.copy(clips[1]["path"], path)
    run(manifest, out, model_path)  # retries, then settles: the old part is rewritten
    assert old_part not in part_files(out)
    assert len(all_rows(out)) == len(ids)
    # a kill after the rewrite's rename, before its delete: the old part back beside its rewrite
    shutil.copy(saved, old_part)
    assert len(all_rows(out)) > len(ids)
    settle(out)
    rows = all_rows(out)
    assert sorted(r["id"] for r in rows) == sorted(ids)
    assert {r["status"] for r in rows} == {"ok"}


def test_sigkill_during_a_retry_then_rerun_gives_every_id_once(
        clips, model_path, write_manifest, tmp_path) -> None:
    missing = [str(tmp_path / f"m{n}-{os.path.basename(c['path'])}")
               for n in range(3) for c in clips]
    ids = [f"row{n}" for n in range(len(missing))]
    manifest = write_manifest({"id": ids, "path": missing})
    out = tmp_path / "out"
    run(manifest, str(out), model_path, rows_per_part=4)
    assert {r["error_kind"] for r in all_rows(str(out))} == {"transient"}
    first_parts = set(part_files(str(out)))
    for n, path in enumerate(missing):
        shutil.copy(clips[n % len(clips)]["path"], path)

    cmd = [sys.executable, "-m", "engine", "transcribe", manifest, "-o", str(out), "-q",
           "--model", model_path, "--device", "cpu", "--rows-per-part", "2",
           "--beam-size", "1", "-j", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if len(set(part_files(str(out))) - first_parts) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the retry ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = all_rows(str(out))
    assert len(killed) > len(ids), "the kill left no retried row beside its error row"

    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = all_rows(str(out))
    assert sorted(r["id"] for r in rows) == sorted(ids)
    assert {r["status"] for r in rows} == {"ok"}


def test_a_file_whose_worker_dies_every_time_is_a_transient_row_that_a_rerun_heals(
        clips, model_path, write_manifest, tmp_path, read_rows) -> None:
    """A row lost to a dead decode worker (a decoder crash, the OOM killer) is `transient`: the
    next run, with workers that no longer die, transcribes it and leaves its id once."""
    victim = str(tmp_path / "victim.flac")
    shutil.copy(clips[1]["path"], victim)
    manifest = write_manifest({"id": ["good", "victim"], "path": [clips[0]["path"], victim]})
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(  # in the spawned decode workers only
        "import os, sys\n"
        "if '--multiprocessing-fork' in sys.argv:\n"
        "    from engine.prepare.stage import Preparer\n"
        "    call = Preparer.__call__\n"
        "    def dying(self, item):\n"
        "        if 'victim' in item.source:\n"
        "            os._exit(1)\n"
        "        return call(self, item)\n"
        "    Preparer.__call__ = dying\n")
    out = str(tmp_path / "out")
    cmd = [sys.executable, "-m", "engine", "transcribe", manifest, "-o", out, "-q",
           "--model", model_path, "--device", "cpu", "--beam-size", "1", "-j", "1"]
    dying = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, PYTHONPATH=str(site)))
    assert dying.returncode == 3, dying.stderr
    rows = read_rows(out)
    assert rows["good"]["status"] == "ok"
    assert (rows["victim"]["status"], rows["victim"]["error_kind"]) == ("error", "transient")
    assert "decode worker died on this file 3 times" in rows["victim"]["error"]

    healed = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert healed.returncode == 0, healed.stderr
    rows = read_rows(out)  # asserts each id once
    assert rows["victim"]["status"] == "ok" and rows["victim"]["error_kind"] is None
    assert rows["victim"]["text"]
