"""Shared helpers of the benchmarks: the corpus manifest, process-tree memory, WER tables."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(os.path.dirname(REPO), "shared", "corpus", "real")


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
