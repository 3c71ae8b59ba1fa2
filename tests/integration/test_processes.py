"""The run's processes: signals stop it cleanly, no worker outlives it, a machinery failure is one
line (not error rows), and the documented Python API works as a plain script.

Real `batchscribe` processes on real clips with the real tiny.en model, real signals, psutil.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import psutil
import pyarrow.dataset as ds
import pytest

from engine.backends.pool import OrderedPool, WorkersFailed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def rows_in(out: str) -> list[dict[str, Any]]:
    if not os.path.isdir(out):
        return []
    return ds.dataset(out, format="parquet", exclude_invalid_files=True).to_table().to_pylist()


def start(manifest: str, out: str, model_path: str, *extra: str,
          env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "engine", "transcribe", manifest, "-o", out, "-q",
           "--model", model_path, "--device", "cpu", "--beam-size", "1", "-j", "2", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, env=env, cwd=ROOT)


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[bytes],
             timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"the run ended (rc {proc.poll()}) or timed out before the condition")


def workers_of(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """The decode workers and multiprocessing's resource tracker (every child process)."""
    return psutil.Process(proc.pid).children(recursive=True)


def gone_within(processes: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(processes, timeout=timeout_s)
    return alive


@pytest.fixture
def long_manifest(clips, write_manifest) -> str:
    rows = [(f"{c['id']}-{n}", c["path"]) for n in range(10) for c in clips]
    return write_manifest({"id": [r[0] for r in rows], "path": [r[1] for r in rows]})


@pytest.mark.parametrize("signum, to_group", [(signal.SIGINT, True), (signal.SIGTERM, False)])
def test_a_signal_commits_finished_rows_stops_workers_and_exits_128_plus_n(
        long_manifest, model_path, tmp_path, signum, to_group) -> None:
    out = str(tmp_path / "out")
    proc = start(long_manifest, out, model_path, "--rows-per-part", "3")
    wait_for(lambda: bool(glob.glob(os.path.join(out, "part-*.parquet"))), proc)
    children = workers_of(proc)
    assert children, "no decode workers to watch"
    sent = time.monotonic()
    if to_group:  # Ctrl-C in a terminal: the whole foreground process group
        os.killpg(proc.pid, signum)
    else:  # `kill PID`, a scheduler's stop
        os.kill(proc.pid, signum)
    _, stderr = proc.communicate(timeout=60)
    took_s = time.monotonic() - sent
    print(f"{signal.Signals(signum).name}: exited {proc.returncode} in {took_s:.2f} s")
    text = stderr.decode()
    assert proc.returncode == 128 + signum, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert f"stopped by {signal.Signals(signum).name}" in text.strip().splitlines()[-1]
    assert not gone_within(children, 10), "workers outlived the run"
    # the rows decoded before the signal were committed and the run recorded them
    (record_path,) = glob.glob(os.path.join(out, ".batchscribe", "runs", "*.json"))
    with open(record_path, encoding="utf-8") as f:
        record = json.load(f)
    rows = rows_in(out)
    assert len(rows) == record["rows"] and len({r["id"] for r in rows}) == len(rows)
    assert {r["status"] for r in rows} == {"ok"}
    # issue 28: the message says how many rows were kept
    assert f": {len(rows)} rows are kept in {out} ({len(rows)} written by this run, 0 before " \
        "it)" in text.strip().splitlines()[-1]


def test_sigkill_of_the_main_process_leaves_no_worker_behind(
        long_manifest, model_path, tmp_path) -> None:
    out = str(tmp_path / "out")
    proc = start(long_manifest, out, model_path)
    wait_for(lambda: len(workers_of(proc)) >= 2, proc)  # a worker and the resource tracker
    children = workers_of(proc)
    os.kill(proc.pid, signal.SIGKILL)  # the main process only, as the OOM killer does
    proc.wait()
    alive = gone_within(children, 10)
    assert not alive, f"orphans: {[p.cmdline() for p in alive]}"


def test_workers_that_cannot_start_stop_the_run_with_one_line_and_no_error_rows(
        long_manifest, model_path, tmp_path) -> None:
    # every spawned worker dies while bootstrapping (as a broken site setup would make it)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os, sys\nif '--multiprocessing-fork' in sys.argv:\n    os._exit(3)\n")
    env = dict(os.environ, PYTHONPATH=str(site))
    out = str(tmp_path / "out")
    proc = start(long_manifest, out, model_path, env=env)
    _, stderr = proc.communicate(timeout=240)
    lines = stderr.decode().strip().splitlines()
    assert proc.returncode == 1, lines
    assert len(lines) == 1 and "decode worker processes could not start" in lines[0], lines
    assert rows_in(out) == []


def _fail_to_build() -> Callable[[str], str]:
    raise OSError("libsndfile.so: cannot open shared object file")


def test_a_worker_state_that_cannot_be_built_raises_instead_of_crash_rows() -> None:
    crashed: list[str] = []
    with pytest.raises(WorkersFailed, match="could not start: OSError: libsndfile"), \
            OrderedPool(_fail_to_build, workers=2, on_crash=crashed.append) as pool:
        list(pool.map(["a", "b", "c"]))
    assert crashed == []


def readme_api_example() -> str:
    """The code block of the README's "Python API" section, as a user would copy it."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme.split("## Python API", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_api_example_runs_as_a_script_without_a_main_guard(
        clips, model_path, write_manifest, tmp_path) -> None:
    """The README's block, verbatim (default model, default decode workers), saved as a plain
    script beside its m.parquet: it transcribes instead of failing every row (issue 16 item 2)."""
    write_manifest({"id": [c["id"] for c in clips[:3]], "path": [c["path"] for c in clips[:3]]},
                   name="m.parquet")
    example = readme_api_example()
    assert "transcribe(" in example and "__main__" not in example
    script = tmp_path / "example.py"
    script.write_text(example + "print(report['counts'])\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "'error': 0" in done.stdout, done.stdout
    rows = rows_in(str(tmp_path / "out"))
    assert sorted(r["id"] for r in rows) == sorted(c["id"] for c in clips[:3])
    assert {r["status"] for r in rows} == {"ok"}


def _killed_from_outside(marks: str, item: str) -> str:
    """SIGKILLs its own worker the first two times it meets "victim", as the OOM killer would."""
    if item == "victim":
        seen = len(os.listdir(marks))
        if seen < 2:
            open(os.path.join(marks, str(seen)), "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
    return item.upper()


def _outside_killer(marks: str) -> Callable[[str], str]:
    return partial(_killed_from_outside, marks)


def test_a_worker_killed_from_outside_twice_does_not_fail_the_row(tmp_path) -> None:
    marks = tmp_path / "kills"
    marks.mkdir()
    items = ["a", "b", "victim", "c", "d"]
    with OrderedPool(partial(_outside_killer, str(marks)), workers=2,
                     on_crash=lambda i: f"crashed {i}", window=4) as pool:
        results = list(pool.map(items))
    assert len(os.listdir(marks)) == 2  # the worker really was killed twice
    assert results == [i.upper() for i in items]
