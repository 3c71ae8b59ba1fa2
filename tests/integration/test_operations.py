"""Issue 27: reliability under real operations, with real `batchscribe` processes, the real
tiny.en model, real clips, real signals and real filesystems.

- one writer per output folder and shard (item 1), a killed run's lock taken over;
- the settings record written before the first row, checked after a SIGKILL (item 2);
- a full or read-only output folder: one line, exit 1, rows and record kept (item 4); the full
  and read-only folders are small tmpfs mounts (skipped where mounting is not allowed);
- no leftovers after a SIGKILL and a rerun, nothing written in the home folder (items 5, 6).
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow.dataset as ds
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def rows_in(out: str) -> list[dict[str, Any]]:
    if not os.path.isdir(out) or not glob.glob(os.path.join(out, "part-*.parquet")):
        return []
    return ds.dataset(out, format="parquet", exclude_invalid_files=True).to_table().to_pylist()


def start(manifest: str, out: str, model_path: str, *extra: str,
          env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "engine", "transcribe", manifest, "-o", out, "-q",
           "--model", model_path, "--device", "cpu", "--beam-size", "1", "-j", "1", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, env=env, cwd=ROOT)


def finish(proc: subprocess.Popen[bytes], timeout_s: float = 300) -> tuple[int, list[str]]:
    _, stderr = proc.communicate(timeout=timeout_s)
    return proc.returncode, stderr.decode().strip().splitlines()


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[bytes],
             timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"the run ended (rc {proc.poll()}) or timed out before the condition")


def parts(out: str) -> list[str]:
    return glob.glob(os.path.join(out, "part-*.parquet"))


def records(out: str) -> list[dict[str, Any]]:
    found = []
    for path in sorted(glob.glob(os.path.join(out, ".batchscribe", "runs", "*.json"))):
        with open(path, encoding="utf-8") as f:
            found.append(json.load(f))
    return found


@pytest.fixture
def manifest_30(clips, write_manifest) -> tuple[str, list[str]]:
    rows = [(f"{c['id']}-{n}", c["path"]) for n in range(5) for c in clips]
    path = write_manifest({"id": [r[0] for r in rows], "path": [r[1] for r in rows]})
    return path, [r[0] for r in rows]


def test_a_second_writer_is_refused_naming_the_first_and_a_killed_runs_lock_is_taken_over(
        manifest_30, model_path, tmp_path) -> None:
    manifest, ids = manifest_30
    out = str(tmp_path / "out")
    first = start(manifest, out, model_path, "--rows-per-part", "2")
    wait_for(lambda: bool(parts(out)), first)
    for extra in ((), ("--beam-size", "2"), ("--shard", "1/2")):  # same, other settings, overlap
        code, lines = finish(start(manifest, out, model_path, *extra))
        assert code == 1 and len(lines) == 1, lines
        assert "is being written by another run" in lines[0], lines
        assert f"pid {first.pid}" in lines[0] and "started 20" in lines[0], lines
    os.kill(first.pid, signal.SIGKILL)  # its lock is left behind, held by no one
    first.wait()
    code, lines = finish(start(manifest, out, model_path))
    assert code == 0, lines
    rows = rows_in(out)
    assert sorted(r["id"] for r in rows) == sorted(ids)  # every id exactly once
    assert not glob.glob(os.path.join(out, ".batchscribe", "lock-*"))  # released at the end


def test_two_shards_write_one_folder_at_once(clips, write_manifest, model_path, tmp_path) -> None:
    ids = [f"{c['id']}-{n}" for n in range(2) for c in clips]
    manifest = write_manifest({"id": ids, "path": [c["path"] for _ in range(2) for c in clips]})
    out = str(tmp_path / "out")
    shards = [start(manifest, out, model_path, "--shard", f"{i}/2") for i in range(2)]
    results = [finish(p) for p in shards]
    assert [code for code, _ in results] == [0, 0], results
    assert sorted(r["id"] for r in rows_in(out)) == sorted(ids)


def test_after_a_sigkill_a_rerun_with_other_settings_is_refused_and_allow_mixed_records_it(
        manifest_30, model_path, tmp_path) -> None:
    manifest, ids = manifest_30
    out = str(tmp_path / "out")
    first = start(manifest, out, model_path, "--rows-per-part", "2")
    wait_for(lambda: len(parts(out)) >= 2, first)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    (killed,) = records(out)
    assert killed["state"] == "running" and killed["model"]["compute_type"] == "int8"
    for extra, change in ((("--beam-size", "2"), "decode.beam_size 1 -> 2"),
                          (("--compute-type", "float32"), "compute_type 'int8' -> 'float32'"),
                          (("--no-vad",), "vad.enabled True -> False")):
        code, lines = finish(start(manifest, out, model_path, *extra))
        assert code == 1 and len(lines) == 1, lines
        assert "holds rows written with other settings" in lines[0] and change in lines[0], lines
    code, lines = finish(start(manifest, out, model_path, "--beam-size", "2", "--allow-mixed"))
    assert code == 0, lines
    with open(os.path.join(out, ".batchscribe", "summary.json"), encoding="utf-8") as f:
        assert json.load(f)["mixed_settings"] is True
    assert records(out)[-1]["mixed_settings"] == ["decode.beam_size 1 -> 2"]
    assert sorted(r["id"] for r in rows_in(out)) == sorted(ids)


@pytest.fixture
def small_tmpfs(tmp_path) -> Iterator[str]:
    """A real 96 KiB tmpfs, unmounted afterwards."""
    mount_point = tmp_path / "fs"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    yield str(mount_point)
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def remount_read_only(point: str) -> None:
    """Remount read-only; tried again while the run has a part open for writing (EBUSY)."""
    for _ in range(200):
        if subprocess.run(["mount", "-o", "remount,ro", point]).returncode == 0:
            return
        time.sleep(0.01)
    raise AssertionError(f"cannot remount {point} read-only")


def test_a_full_output_folder_is_one_line_with_its_rows_and_record_kept(
        manifest_30, model_path, small_tmpfs) -> None:
    manifest, _ = manifest_30
    out = os.path.join(small_tmpfs, "out")
    code, lines = finish(start(manifest, out, model_path, "--rows-per-part", "1"))
    assert code == 1 and len(lines) == 1, lines
    assert "No space left on device (ENOSPC); free some space" in lines[0], lines
    assert "the rows committed so far are kept" in lines[0]
    rows = rows_in(out)
    assert rows and len({r["id"] for r in rows}) == len(rows)  # committed parts are whole
    assert records(out) and not glob.glob(os.path.join(out, "**", "*.tmp"), recursive=True)


def test_a_folder_made_read_only_mid_run_is_one_line_with_rows_and_record_kept(
        manifest_30, model_path, small_tmpfs) -> None:
    manifest, _ = manifest_30
    out = os.path.join(small_tmpfs, "out")
    proc = start(manifest, out, model_path, "--rows-per-part", "1")
    wait_for(lambda: bool(parts(out)), proc)
    remount_read_only(small_tmpfs)
    code, lines = finish(proc)
    assert code == 1 and len(lines) == 1, lines
    assert "Read-only file system (EROFS)" in lines[0], lines
    assert rows_in(out) and records(out)[0]["state"] == "running"  # the record written first


def test_an_unwritable_output_is_refused_before_any_decoding(
        clips, write_manifest, model_path, small_tmpfs) -> None:
    manifest = write_manifest({"id": [c["id"] for c in clips], "path": [c["path"] for c in clips]})
    subprocess.run(["mount", "-o", "remount,ro", small_tmpfs], check=True)
    for out in (os.path.join(small_tmpfs, "out"), "/proc/batchscribe-out"):
        started = time.monotonic()
        code, lines = finish(start(manifest, out, model_path), 60)
        took_s = time.monotonic() - started
        assert code == 1 and len(lines) == 1, lines
        assert "cannot" in lines[0] and out in lines[0], lines
        assert took_s < 20, f"refused only after {took_s:.1f} s"


def test_a_sigkill_and_a_rerun_leave_nothing_behind_and_nothing_is_written_in_home(
        manifest_30, model_path, tmp_path) -> None:
    manifest, ids = manifest_30
    out, home, temp = (str(tmp_path / name) for name in ("out", "home", "temp"))
    os.makedirs(home)
    os.makedirs(temp)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env.update(HOME=home, TMPDIR=temp)
    first = start(manifest, out, model_path, "--rows-per-part", "2", env=env)
    wait_for(lambda: bool(parts(out)), first)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert glob.glob(os.path.join(temp, "batchscribe-features-*"))  # what a kill leaves
    code, lines = finish(start(manifest, out, model_path, env=env))
    assert code == 0, lines
    assert sorted(r["id"] for r in rows_in(out)) == sorted(ids)
    assert os.listdir(temp) == []
    assert not glob.glob(os.path.join(out, "**", "*.tmp"), recursive=True)
    assert not glob.glob(os.path.join(out, "**", ".*.tmp"), recursive=True)
    leftovers = [os.path.join(root, n) for root, _, names in os.walk(home) for n in names]
    assert leftovers == []  # onnxruntime's telemetry database no longer lands in ~/.cache
