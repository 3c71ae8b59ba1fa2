"""Packing benchmark: `batchscribe transcribe --pack` vs the same engine without packing.

    python bench/packing.py [--threads 2] [--repeat 3] [--sweep] [--model DIR --language en]

Corpus: the shared real clips of at most 30 s (the short-clip set), repeated `--repeat` times in
a different order each time (so each copy packs with different neighbours). Same run, same
model (tiny.en unless --model; int8, CPU): (b) faster-whisper BatchedInferencePipeline per
file, (c) batchscribe without packing, (d) batchscribe --pack. `--sweep` adds packing at other
gaps and fills, on the clips once. Speeds are whole commands from run.json (model load
included, process start not). Appends the tables to bench/RESULTS.md.
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile

import click

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PYTHON, REPO, load_corpus, run_measured, write_manifest  # noqa: E402
from compare import _append, read_output  # noqa: E402

from engine.evaluate import corpus_wer  # noqa: E402
from engine.models import default_model_path  # noqa: E402

SWEEP = [(gap, fill) for gap in (1.0, 1.5, 2.0, 3.0) for fill in (30.0, 24.0)]


def short_clips(repeat: int) -> list[dict[str, str]]:
    """The clips of at most 30 s, `repeat` times, each copy in its own shuffled order."""
    rows = [r for r in load_corpus() if float(r["duration_s"]) <= 30.0]
    out = []
    for copy in range(repeat):
        order = list(rows)
        random.Random(copy).shuffle(order)
        out += [{**r, "id": f"{r['id']}#{copy}"} for r in order]
    return out


def run_engine(manifest: str, out_dir: str, args: list[str], threads: int) -> dict[str, object]:
    cmd = [PYTHON, "-m", "engine", "transcribe", manifest, "-o", out_dir, "--quiet",
           "--compute-type", "int8", "--device", "cpu", *ENGINE_ARGS, *args]
    measured = run_measured(cmd, {"OMP_NUM_THREADS": str(threads)})
    if measured.returncode != 0:
        raise click.ClickException(f"{' '.join(cmd)} exited with {measured.returncode}")
    with open(os.path.join(out_dir, "run.json"), encoding="utf-8") as f:
        report: dict[str, object] = json.load(f)
    return report


def score(refs: dict[str, str], texts: dict[str, str]) -> float:
    ids = list(refs)
    return corpus_wer([refs[i] for i in ids], [texts.get(i, "") for i in ids]).wer


def engine_row(label: str, report: dict[str, object], refs: dict[str, str],
               texts: dict[str, str], base: float) -> str:
    timings = report["timings"]
    assert isinstance(timings, dict)
    speed = float(report["audio_s_per_s"])  # type: ignore[arg-type]
    windows = (timings["chunks"] - timings["packed_chunks"] + timings["packed_windows"]
               + timings["unpacked_chunks"])
    return (f"| {label} | {speed:.1f} | {speed / base:.2f}x | {score(refs, texts):.2f} | "
            f"{windows} | {timings['packed_chunks']} | {timings['unpacked_chunks']} |")


ENGINE_ARGS: list[str] = []  # --model and --language, for every engine run
HEADER = ["| system | audio-s/s | vs (c) | WER | windows decoded | files packed | "
          "decoded alone again |", "| --- | --- | --- | --- | --- | --- | --- |"]


@click.command()
@click.option("--threads", default=2, show_default=True)
@click.option("--repeat", default=3, show_default=True, help="Copies of the short-clip set.")
@click.option("--model", default=None, help="CTranslate2 model folder [default: tiny.en].")
@click.option("--language", default=None, help="Language of every file (multilingual models: "
              "without it each file costs an extra encoder pass to detect its language).")
@click.option("--sweep", is_flag=True, help="Also pack at other gaps and fills (clips once).")
@click.option("--results", default=os.path.join(REPO, "bench", "RESULTS.md"), show_default=True)
def main(threads: int, repeat: int, model: str | None, language: str | None, sweep: bool,
         results: str) -> None:
    model = model or default_model_path()
    ENGINE_ARGS.extend(["--model", model, *(["--language", language] if language else [])])
    work = tempfile.mkdtemp(prefix="bench-pack-")
    rows = short_clips(repeat)
    refs = {r["id"]: r["reference_text"] for r in rows}
    manifest = os.path.join(work, "short.parquet")
    write_manifest(rows, manifest)

    out = os.path.join(work, "fw.json")
    run_measured([PYTHON, os.path.join(REPO, "bench", "fw_loop.py"), "batched",
                             manifest, model, str(threads), out, *([language] if language else [])],
                            {"OMP_NUM_THREADS": str(threads)})
    with open(out, encoding="utf-8") as f:
        fw = json.load(f)
    fw_speed = fw["audio_s"] / fw["transcribe_s"]
    plain = run_engine(manifest, os.path.join(work, "plain"), ["--no-pack"], threads)
    packed = run_engine(manifest, os.path.join(work, "pack"), ["--pack"], threads)
    base = float(plain["audio_s_per_s"])  # type: ignore[arg-type]
    lines = [f"Corpus: the {len(rows) // repeat} shared clips of at most 30 s, {repeat} copies "
             f"in shuffled orders: {len(rows)} files, {fw['audio_s']:.0f} s; model {model}, int8, "
             f"CPU, {threads} threads, beam 5; python bench/packing.py --threads {threads} "
             f"--repeat {repeat}" + (" --sweep" if sweep else "")
             + (f" --language {language}" if language else ""), "", *HEADER,
             f"| (b) faster-whisper BatchedInferencePipeline loop | {fw_speed:.1f} | "
             f"{fw_speed / base:.2f}x | {score(refs, fw['texts']):.2f} | - | - | - |",
             engine_row("(c) batchscribe --no-pack", plain, refs,
                        read_output(os.path.join(work, "plain")), base),
             engine_row("(d) batchscribe --pack (gap 2 s, fill 30 s)", packed, refs,
                        read_output(os.path.join(work, "pack")), base)]
    if sweep:
        once = short_clips(1)
        once_refs = {r["id"]: r["reference_text"] for r in once}
        once_manifest = os.path.join(work, "once.parquet")
        write_manifest(once, once_manifest)
        plain_once = run_engine(once_manifest, os.path.join(work, "once-plain"), ["--no-pack"],
                                threads)
        base_once = float(plain_once["audio_s_per_s"])  # type: ignore[arg-type]
        lines += ["", f"Sweep on the {len(once)} clips once (vs (c) on the same clips):", "",
                  *HEADER, engine_row("(c) --no-pack", plain_once, once_refs,
                                      read_output(os.path.join(work, "once-plain")), base_once)]
        for gap, fill in SWEEP:
            folder = os.path.join(work, f"sweep-{gap}-{fill}")
            report = run_engine(once_manifest, folder, ["--pack", "--pack-gap", str(gap),
                                                        "--pack-fill", str(fill)], threads)
            lines.append(engine_row(f"--pack-gap {gap} --pack-fill {fill}", report, once_refs,
                                    read_output(folder), base_once))
    text = "\n".join(lines)
    click.echo(text)
    _append(results, "CPU: packing short files into shared windows", text)


if __name__ == "__main__":
    main()
