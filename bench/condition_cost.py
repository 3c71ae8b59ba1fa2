"""What `--condition-on-previous-text` costs on a many-file long-form job, and what it gains.

    python bench/condition_cost.py [--copies 4] [--runs 2] [--model PATH] [--device cpu]
        [--extra "-j 14"] [--set-dir /tmp/batchscribe-longform] [--joined]

The long-form set (bench/longform_set.py, built when missing) `--copies` times over is transcribed
by whole `batchscribe transcribe` commands, `--no-condition-on-previous-text` (each chunk decoded
alone) against `--condition-on-previous-text` (the default), in alternating pairs (A B A B ...;
a fresh output folder each).
With `--joined`, the set's files are first joined into one long recording (1 s gaps), so each
copy is one file: the case where conditioning has the fewest files to fill batches with. Prints
each run's wall and CPU seconds (the command and its children), the medians and the
median of the paired ratios, and each mode's WER / deletions over the set (Whisper English
normaliser); appends them to bench/RESULTS.md. Runs on the CPU or a GPU (`--device cuda`).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile

import click
from common import (
    RESULTS,
    Rows,
    append_results,
    audio_seconds,
    references,
    repeat_rows,
    run_engine,
    scores,
    write_manifest,
)
from longform_set import DEFAULT_OUT, load_set

MODES = {"chunked": ["--no-condition-on-previous-text"],
         "conditioned": ["--condition-on-previous-text"]}


def join(rows: Rows, folder: str) -> dict[str, str]:
    """The set's files as one recording, 1 s of silence between them."""
    import numpy as np
    import soundfile

    gap = np.zeros(16000, dtype=np.float32)
    audio = np.concatenate([piece for r in rows for piece in
                            (soundfile.read(r["path"], dtype="float32")[0], gap)])
    path = os.path.join(folder, "joined.flac")
    soundfile.write(path, audio, 16000, format="FLAC")
    return {"id": "joined", "path": path, "duration_s": str(audio.size / 16000),
            "reference_text": " ".join(r["reference_text"] for r in rows)}


def score(refs: dict[str, str], texts: dict[str, str]) -> str:
    """WER % / deletions, or "-" where the eval extra is not installed (the GPU machine)."""
    from engine import ConfigError

    try:
        wer, deletions = scores(refs, texts, {"all": list(refs)})["all"]
    except ConfigError:
        return "-"
    return f"{wer:.2f} / {deletions}"


@click.command()
@click.option("--copies", default=4, show_default=True, help="Times the set is repeated.")
@click.option("--runs", default=2, show_default=True, help="Paired runs of each mode.")
@click.option("--model", "model_path", default=None, help="Model folder (default: tiny.en).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--extra", default="", help="More batchscribe options for both modes.")
@click.option("--set-dir", default=DEFAULT_OUT, show_default=True)
@click.option("--joined", is_flag=True, help="Join the set into one recording first.")
@click.option("--results", default=RESULTS, show_default=True)
def main(copies: int, runs: int, model_path: str | None, device: str, extra: str, set_dir: str,
         joined: bool, results: str) -> None:
    rows = load_set(set_dir)
    if joined:
        rows = [join(rows, tempfile.mkdtemp(prefix="condition-cost-joined-"))]
    items = repeat_rows(rows, copies)
    refs = references(items)
    work = tempfile.mkdtemp(prefix="condition-cost-")
    manifest = write_manifest(items, os.path.join(work, "manifest.parquet"))
    audio_s = audio_seconds(items)
    base = [*(["--model", model_path] if model_path else []), *extra.split()]
    walls: dict[str, list[float]] = {m: [] for m in MODES}
    cpus: dict[str, list[float]] = {m: [] for m in MODES}
    texts: dict[str, dict[str, str]] = {}
    for n in range(runs):
        for mode, options in MODES.items():
            out = os.path.join(work, mode)
            shutil.rmtree(out, ignore_errors=True)
            _, texts[mode], measured = run_engine(manifest, out, [*base, *options],
                                                  device=device)
            walls[mode].append(measured.wall_s)
            cpus[mode].append(measured.cpu_s)
            click.echo(f"run {n + 1} {mode}: wall {measured.wall_s:.1f} s, "
                       f"CPU {measured.cpu_s:.1f} s", err=True)
    ratio_wall, ratio_cpu = (statistics.median(
        c / d for c, d in zip(times["conditioned"], times["chunked"], strict=True))
        for times in (walls, cpus))
    what = "the long-form set joined into one file" if joined else "the long-form set"
    lines = [f"{len(refs)} files ({copies} copies of {what}), {audio_s:.0f} s of audio,"
             f" model {os.path.basename(model_path or 'tiny.en')}, --device {device} {extra},"
             f" {runs} paired runs.", "",
             "| mode | wall s (median) | audio-s/s | CPU s (median) | WER % / deletions |",
             "| --- | --- | --- | --- | --- |"]
    for mode in MODES:
        wall, cpu = statistics.median(walls[mode]), statistics.median(cpus[mode])
        lines.append(f"| {mode} | {wall:.1f} | {audio_s / wall:.0f} | {cpu:.1f} | "
                     f"{score(refs, texts[mode])} |")
    lines += ["", f"Conditioned / chunked, median of pairs: wall {ratio_wall:.3f}x, "
                  f"CPU {ratio_cpu:.3f}x."]
    text = "\n".join(lines)
    click.echo(text)
    append_results(results, "What conditioning on previous text costs (bench/condition_cost.py)",
                   text)


if __name__ == "__main__":
    main()
