"""Packing benchmark: `batchscribe transcribe --pack` vs the same engine without packing.

    python bench/packing.py [--threads 2] [--repeat 3] [--sweep] [--model DIR --language en]

Corpus: the shared real clips of at most 30 s (the short-clip set), repeated `--repeat` times in
a different order each time (so each copy packs with different neighbours). Same run, same
model (tiny.en unless --model; int8, CPU): (b) faster-whisper BatchedInferencePipeline per
file, (c) batchscribe without packing, (d) batchscribe --pack. `--sweep` adds packing at other
gaps and fills, on the same files. Speeds are whole commands from the run record (model load
included, process start not). Appends the tables to bench/RESULTS.md.
"""

from __future__ import annotations

import os
import random
import tempfile
from typing import Any

import click
from common import (
    REPO,
    Measured,
    append_results,
    load_corpus,
    run_engine,
    run_fw_loop,
    wer,
    write_manifest,
)

from engine.decode.models import default_model_path

SWEEP = [(gap, fill) for gap in (1.0, 2.0, 3.0) for fill in (29.0, 26.0, 22.0)]
HEADER = ["| system | audio-s/s | vs (c) | WER | windows decoded | files packed | "
          "decoded alone again |", "| --- | --- | --- | --- | --- | --- | --- |"]


def short_clips(repeat: int) -> list[dict[str, str]]:
    """The clips of at most 30 s, `repeat` times, each copy in its own shuffled order."""
    rows = [r for r in load_corpus() if float(r["duration_s"]) <= 30.0]
    out = []
    for copy in range(repeat):
        order = list(rows)
        random.Random(copy).shuffle(order)
        out += [{**r, "id": f"{r['id']}#{copy}"} for r in order]
    return out


def engine_row(label: str, run: tuple[dict[str, Any], dict[str, str], Measured],
               refs: dict[str, str], base: float) -> str:
    report, texts, _ = run
    timings = report["timings"]
    speed = float(report["audio_s_per_s"])
    windows = (timings["chunks"] - timings["packed_chunks"] + timings["packed_windows"]
               + timings["unpacked_chunks"])
    return (f"| {label} | {speed:.1f} | {speed / base:.2f}x | {wer(refs, texts):.2f} | "
            f"{windows} | {timings['packed_chunks']} | {timings['unpacked_chunks']} |")


@click.command()
@click.option("--threads", default=2, show_default=True)
@click.option("--repeat", default=3, show_default=True, help="Copies of the short-clip set.")
@click.option("--model", default=None, help="CTranslate2 model folder [default: tiny.en].")
@click.option("--language", default=None, help="Language of every file (multilingual models: "
              "without it each file costs an extra encoder pass to detect its language).")
@click.option("--sweep", is_flag=True, help="Also pack at other gaps and fills.")
@click.option("--results", default=os.path.join(REPO, "bench", "RESULTS.md"), show_default=True)
def main(threads: int, repeat: int, model: str | None, language: str | None, sweep: bool,
         results: str) -> None:
    model = model or default_model_path()
    shared = ["--model", model, *(["--language", language] if language else [])]
    work = tempfile.mkdtemp(prefix="bench-pack-")
    rows = short_clips(repeat)
    refs = {r["id"]: r["reference_text"] for r in rows}
    manifest = os.path.join(work, "short.parquet")
    write_manifest(rows, manifest)

    fw, _ = run_fw_loop("batched", manifest, model, threads, work, language)
    fw_speed = fw["audio_s"] / fw["transcribe_s"]
    plain = run_engine(manifest, os.path.join(work, "plain"), [*shared, "--no-pack"], threads)
    packed = run_engine(manifest, os.path.join(work, "pack"), [*shared, "--pack"], threads)
    base = float(plain[0]["audio_s_per_s"])
    lines = [f"Corpus: the {len(rows) // repeat} shared clips of at most 30 s, {repeat} copies "
             f"in shuffled orders: {len(rows)} files, {fw['audio_s']:.0f} s; model {model}, int8, "
             f"CPU, {threads} threads, beam 5; python bench/packing.py --threads {threads} "
             f"--repeat {repeat}" + (" --sweep" if sweep else "")
             + (f" --language {language}" if language else ""), "", *HEADER,
             f"| (b) faster-whisper BatchedInferencePipeline loop | {fw_speed:.1f} | "
             f"{fw_speed / base:.2f}x | {wer(refs, fw['texts']):.2f} | - | - | - |",
             engine_row("(c) batchscribe --no-pack", plain, refs, base),
             engine_row("(d) batchscribe --pack (gap 2 s, fill 29 s)", packed, refs, base)]
    if sweep:
        lines += ["", "Sweep (same files, vs (c)):", "", *HEADER]
        for gap, fill in SWEEP:
            options = ["--pack", "--pack-gap", str(gap), "--pack-fill", str(fill)]
            swept = run_engine(manifest, os.path.join(work, f"sweep-{gap}-{fill}"),
                               [*shared, *options], threads)
            lines.append(engine_row(f"--pack-gap {gap} --pack-fill {fill}", swept, refs, base))
    text = "\n".join(lines)
    click.echo(text)
    append_results(results, "CPU: packing short files into shared windows", text)


if __name__ == "__main__":
    main()
