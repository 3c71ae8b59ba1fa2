"""Shared helpers of the benchmarks: the corpus manifest, runs of faster-whisper's loops and of
batchscribe on CPU, process-tree memory, outputs and their WER, the results file."""

from __future__ import annotations

import csv
import datetime
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(os.path.dirname(REPO), "shared", "corpus", "real")


def timed(call: Callable[[], object], repeat: int = 3) -> float:
    """Best wall time of `call()` over `repeat` runs, after one warm-up."""
    call()
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def load_corpus(corpus: str = CORPUS) -> list[dict[str, str]]:
    with open(os.path.join(corpus, "manifest.tsv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    for row in rows:
        row["path"] = os.path.join(corpus, row["file"])
    return rows


def write_manifest(rows: list[dict[str, str]], path: str, repeat: int = 1) -> None:
    ids, paths, refs = [], [], []
    for copy in range(repeat):
        for row in rows:
            ids.append(row["id"] if repeat == 1 else f"{row['id']}#{copy}")
            paths.append(row["path"])
            refs.append(row["reference_text"])
    pq.write_table(pa.table({"id": ids, "path": paths, "reference": refs}), path)


@dataclass
class Measured:
    wall_s: float
    peak_rss_mb: float
    returncode: int


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run a command; sample the RSS of its whole process tree every 50 ms."""
    import psutil

    started = time.monotonic()
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})})
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = proc.wait()
    stop.set()
    sampler.join()
    return Measured(time.monotonic() - started, peak / 2**20, code)


PYTHON = sys.executable


def run_fw_loop(mode: str, manifest: str, model: str, threads: int, work: str,
                language: str | None = None) -> tuple[dict[str, Any], Measured]:
    """bench/fw_loop.py in `mode` (loop or batched): its {texts, audio_s, transcribe_s}."""
    out = os.path.join(work, f"fw-{mode}.json")
    measured = run_measured([PYTHON, os.path.join(REPO, "bench", "fw_loop.py"), mode, manifest,
                             model, str(threads), out, *([language] if language else [])],
                            {"OMP_NUM_THREADS": str(threads)})
    with open(out, encoding="utf-8") as f:
        return json.load(f), measured


def engine_command(manifest: str, out_dir: str, args: list[str]) -> list[str]:
    """`batchscribe transcribe` on the CPU, int8, quiet, with extra options."""
    return [PYTHON, "-m", "engine", "transcribe", manifest, "-o", out_dir, "--quiet",
            "--compute-type", "int8", "--device", "cpu", *args]


def run_engine(manifest: str, out_dir: str, args: list[str], threads: int
               ) -> tuple[dict[str, Any], dict[str, str], Measured]:
    """One CPU `batchscribe transcribe` run (`engine_command`): its run record, its texts, and
    its wall time and peak memory."""
    cmd = engine_command(manifest, out_dir, args)
    measured = run_measured(cmd, {"OMP_NUM_THREADS": str(threads)})
    if measured.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {measured.returncode}")
    return read_report(out_dir), read_output(out_dir), measured


def read_report(out_dir: str) -> dict[str, Any]:
    """The record of the last run into `out_dir` (`.batchscribe/runs/` in the output folder)."""
    from engine.io.runlog import latest_record

    return latest_record(out_dir)


def read_output(folder: str) -> dict[str, str]:
    """{id: text} of an output folder."""
    table = ds.dataset(folder, format="parquet", exclude_invalid_files=True).to_table(
        columns=["id", "text"])
    return {r["id"]: r["text"] or "" for r in table.to_pylist()}


def wer(refs: dict[str, str], texts: dict[str, str]) -> float:
    """Corpus WER of `texts` over every id of `refs` (a missing text counts as empty)."""
    from engine.corpus.evaluate import corpus_wer

    ids = list(refs)
    return corpus_wer([refs[i] for i in ids], [texts.get(i, "") for i in ids]).wer


def append_results(path: str, title: str, body: str) -> None:
    """Add a dated section to bench/RESULTS.md (or `path`)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"\n## {title} ({datetime.date.today()})\n\n{body}\n")
