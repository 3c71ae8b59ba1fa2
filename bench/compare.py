"""CPU benchmark: faster-whisper's loops vs `batchscribe transcribe`, same files, same run.

    python bench/compare.py [--threads 2] [--repeat 1] [--corpus DIR]

On every clip of shared/corpus/real (tiny.en, int8, CPU): (a) WhisperModel.transcribe per file,
(b) BatchedInferencePipeline.transcribe per file, (c) batchscribe transcribe. Prints and writes
bench/RESULTS.md: audio-seconds per second, WER (Whisper English normaliser), peak memory.
Speeds of (a) and (b) exclude model loading; (c) is the whole command, start-up included.
"""

from __future__ import annotations

import os
import tempfile

import click
from common import (
    CORPUS,
    RESULTS,
    append_results,
    default_model,
    load_corpus,
    references,
    repeat_rows,
    run_engine,
    run_fw_loop,
    wer,
    write_manifest,
)


@click.command()
@click.option("--threads", default=2, show_default=True, help="CPU threads for every system.")
@click.option("--repeat", default=1, show_default=True, help="Repeat the corpus N times.")
@click.option("--batchscribe-args", default="", help="Extra options for batchscribe.")
@click.option("--ray", "with_ray", is_flag=True,
              help="Also (d): the same command on the Ray backend (a local Ray instance).")
@click.option("--corpus", default=CORPUS, show_default=True, help="A corpus folder (manifest.tsv).")
@click.option("--results", default=RESULTS, show_default=True)
def main(threads: int, repeat: int, batchscribe_args: str, with_ray: bool, corpus: str,
         results: str) -> None:
    rows = repeat_rows(load_corpus(corpus), repeat)
    refs = references(rows)
    model = default_model()
    work = tempfile.mkdtemp(prefix="bench-")
    manifest = write_manifest(rows, os.path.join(work, "manifest.parquet"))
    table = []
    for label, mode in (("(a) faster-whisper transcribe loop", "loop"),
                        ("(b) faster-whisper BatchedInferencePipeline loop", "batched")):
        result, m = run_fw_loop(mode, manifest, model, threads, work)
        table.append((label, result["audio_s"] / result["transcribe_s"], result["texts"], m))
    engines = [("(c) batchscribe transcribe", "batchscribe", batchscribe_args.split())]
    if with_ray:
        engines.append(("(d) batchscribe transcribe --backend ray", "ray", [*RAY_ARGS,
                        *batchscribe_args.split()]))
    for label, name, args in engines:
        out_dir = os.path.join(work, name)
        report, texts, m = run_engine(manifest, out_dir, args, threads)
        speed = report["audio_hours"] * 3600 / m.wall_s
        table.append((f"{label} {batchscribe_args}".strip(), speed, texts, m))

    audio_s = report["audio_hours"] * 3600
    lines = [f"Corpus: {len(refs)} files, {audio_s:.0f} s of audio; tiny.en int8, CPU, "
             f"{threads} threads; python bench/compare.py --threads {threads} --repeat {repeat}"
             + (f" --batchscribe-args '{batchscribe_args}'" if batchscribe_args else ""), "",
             "| system | audio-s/s | vs (a) | vs (b) | WER | peak RSS MB |",
             "| --- | --- | --- | --- | --- | --- |"]
    base_a, base_b = table[0][1], table[1][1]
    for label, speed, texts, measured in table:
        lines.append(f"| {label} | {speed:.1f} | {speed / base_a:.2f}x | {speed / base_b:.2f}x | "
                     f"{wer(refs, texts):.2f} | {measured.peak_rss_mb:.0f} |")
    if with_ray:
        lines += ["", "Ray stages (ray-stats.txt of (d)):", "", *ray_stage_times(
            os.path.join(work, "ray", "ray-stats.txt"))]
    text = "\n".join(lines)
    click.echo(text)
    append_results(results, "CPU: faster-whisper loops vs batchscribe", text)


RAY_ARGS = ["--backend", "ray", "--ray-cpus-per-model-actor", "0.5",
            "--ray-cpus-per-decode-actor", "0.5"]


def ray_stage_times(path: str) -> list[str]:
    """One line per Ray Data operator: tasks and wall time, as Ray's stats report them."""
    with open(path, encoding="utf-8") as f:
        return [f"- {line.strip()}" for line in f if line.startswith("Operator ")]


if __name__ == "__main__":
    main()
