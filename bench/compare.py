"""CPU benchmark: faster-whisper's loops vs `batchscribe transcribe`, same files, same run.

    python bench/compare.py [--threads 2] [--repeat 1]

On every clip of shared/corpus/real (tiny.en, int8, CPU): (a) WhisperModel.transcribe per file,
(b) BatchedInferencePipeline.transcribe per file, (c) batchscribe transcribe. Prints and writes
bench/RESULTS.md: audio-seconds per second, WER (Whisper English normaliser), peak memory.
Speeds of (a) and (b) exclude model loading; (c) is the whole command, start-up included.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import click
import pyarrow.dataset as ds

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PYTHON, REPO, load_corpus, run_measured, write_manifest  # noqa: E402

from engine.evaluate import corpus_wer  # noqa: E402
from engine.models import default_model_path  # noqa: E402


def read_output(folder: str) -> dict[str, str]:
    table = ds.dataset(folder, format="parquet", exclude_invalid_files=True).to_table(
        columns=["id", "text"])
    return {r["id"]: r["text"] or "" for r in table.to_pylist()}


@click.command()
@click.option("--threads", default=2, show_default=True, help="CPU threads for every system.")
@click.option("--repeat", default=1, show_default=True, help="Repeat the corpus N times.")
@click.option("--batchscribe-args", default="", help="Extra options for batchscribe.")
@click.option("--ray", "with_ray", is_flag=True,
              help="Also (d): the same command on the Ray backend (a local Ray instance).")
@click.option("--results", default=os.path.join(REPO, "bench", "RESULTS.md"), show_default=True)
def main(threads: int, repeat: int, batchscribe_args: str, with_ray: bool, results: str) -> None:
    rows = load_corpus()
    refs = {}
    for copy in range(repeat):
        for r in rows:
            refs[r["id"] if repeat == 1 else f"{r['id']}#{copy}"] = r["reference_text"]
    model = default_model_path()
    work = tempfile.mkdtemp(prefix="bench-")
    manifest = os.path.join(work, "manifest.parquet")
    write_manifest(rows, manifest, repeat)
    env = {"OMP_NUM_THREADS": str(threads)}
    table = []
    for label, mode in (("(a) faster-whisper transcribe loop", "loop"),
                        ("(b) faster-whisper BatchedInferencePipeline loop", "batched")):
        out = os.path.join(work, f"{mode}.json")
        m = run_measured([PYTHON, os.path.join(REPO, "bench", "fw_loop.py"), mode, manifest,
                          model, str(threads), out], env)
        with open(out, encoding="utf-8") as f:
            result = json.load(f)
        table.append((label, result["audio_s"] / result["transcribe_s"], result["texts"], m))
    engines = [("(c) batchscribe transcribe", "batchscribe", batchscribe_args.split())]
    if with_ray:
        engines.append(("(d) batchscribe transcribe --backend ray", "ray", [*RAY_ARGS,
                        *batchscribe_args.split()]))
    for label, name, args in engines:
        out_dir = os.path.join(work, name)
        cmd = [PYTHON, "-m", "engine", "transcribe", manifest, "-o", out_dir, "--quiet",
               "--compute-type", "int8", "--device", "cpu", *args]
        m = run_measured(cmd, env)
        with open(os.path.join(out_dir, "run.json"), encoding="utf-8") as f:
            report = json.load(f)
        speed = report["audio_hours"] * 3600 / m.wall_s
        table.append((f"{label} {batchscribe_args}".strip(), speed, read_output(out_dir), m))

    audio_s = report["audio_hours"] * 3600
    lines = [f"Corpus: {len(refs)} files, {audio_s:.0f} s of audio; tiny.en int8, CPU, "
             f"{threads} threads; python bench/compare.py --threads {threads} --repeat {repeat}"
             + (f" --batchscribe-args '{batchscribe_args}'" if batchscribe_args else ""), "",
             "| system | audio-s/s | vs (a) | vs (b) | WER | peak RSS MB |",
             "| --- | --- | --- | --- | --- | --- |"]
    base_a, base_b = table[0][1], table[1][1]
    for label, speed, texts, measured in table:
        ids = list(refs)
        wer = corpus_wer([refs[i] for i in ids], [texts.get(i, "") for i in ids])
        lines.append(f"| {label} | {speed:.1f} | {speed / base_a:.2f}x | {speed / base_b:.2f}x | "
                     f"{wer.wer:.2f} | {measured.peak_rss_mb:.0f} |")
    if with_ray:
        lines += ["", "Ray stages (ray-stats.txt of (d)):", "", *ray_stage_times(
            os.path.join(work, "ray", "ray-stats.txt"))]
    text = "\n".join(lines)
    click.echo(text)
    _append(results, "CPU: faster-whisper loops vs batchscribe", text)


RAY_ARGS = ["--backend", "ray", "--ray-cpus-per-model-actor", "0.5",
            "--ray-cpus-per-decode-actor", "0.5"]


def ray_stage_times(path: str) -> list[str]:
    """One line per Ray Data operator: tasks and wall time, as Ray's stats report them."""
    with open(path, encoding="utf-8") as f:
        return [f"- {line.strip()}" for line in f if line.startswith("Operator ")]


def _append(path: str, title: str, body: str) -> None:
    import datetime

    with open(path, "a", encoding="utf-8") as f:
        f.write(f"\n## {title} ({datetime.date.today()})\n\n{body}\n")


if __name__ == "__main__":
    main()
