"""Long-form accuracy: the engine's modes vs faster-whisper's sequential loop, same files, one run.

    python bench/longform.py [--model PATH] [--threads 2] [--mode ARGS ...] [--language en]

On the long-form set (bench/longform_set.py, built when missing): batchscribe transcribe (CPU,
int8) once per mode (each `--mode` is a string of extra options; default: the aligned and tokens
timestamps, each conditioned on previous text, the default, and without it), and faster-whisper's
`WhisperModel.transcribe(vad_filter=True)` with its defaults (beam 5, previous-text conditioning)
on the same model. Prints WER and deletions (Whisper English normaliser) per file, per kind of
copy (clean, noisy, phone, room: `longform_set.VARIANTS`) and overall, one column per system,
and the wall time of each run; appends the table to bench/RESULTS.md.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

import click
from common import (
    RESULTS,
    append_results,
    audio_seconds,
    base_id,
    default_model,
    load_texts,
    references,
    run_engine,
    run_fw_loop,
    scores,
    write_manifest,
)
from longform_set import DEFAULT_OUT, VARIANTS, load_set, variant_of

DEFAULT_MODES = ("--timestamps aligned", "--timestamps tokens",
                 "--timestamps aligned --no-condition-on-previous-text",
                 "--timestamps tokens --no-condition-on-previous-text")


def groups(ids: list[str]) -> dict[str, list[str]]:
    """Each file alone, each kind of copy (the clean files, then each of `VARIANTS`), and all."""
    kinds = {"clean files": [i for i in ids if variant_of(i) is None]}
    kinds.update({f"{v} copies": [i for i in ids if variant_of(i) == v] for v in VARIANTS})
    return {**{i: [i] for i in ids}, **{k: v for k, v in kinds.items() if v}, "all": ids}


def table(labels: list[str], cells: list[dict[str, tuple[float, int]]],
          bold: Callable[[str], bool]) -> list[str]:
    """A markdown table of WER % / deletions: one row per group, one column per system."""
    lines = ["Systems: " + "; ".join(f"({n}) {label}" for n, label in enumerate(labels)), "",
             "| file | " + " | ".join(f"({n})" for n in range(len(labels))) + " |",
             "| --- " * (len(labels) + 1) + "|"]
    for name in cells[0]:
        mark = "**" if bold(name) else ""
        lines.append(f"| {mark}{name}{mark} | " + " | ".join(
            f"{s[name][0]:.2f} / {s[name][1]}" for s in cells) + " |")
    return lines


def score_gpu_texts(path: str, refs: dict[str, str]) -> str:
    """A table of WER % / deletions per file, kind of copy and overall for each system of a
    bench/gpu.py run; each copy of the set (id#k) counts as its own file."""
    systems = load_texts(path)
    cells = []
    for texts in systems.values():
        copies = {i: base_id(i) for i in texts}
        by_group = {name: [i for i in texts if copies[i] in ids]
                    for name, ids in groups(list(refs)).items()}
        cells.append(scores({i: refs[c] for i, c in copies.items()}, texts, by_group))
    return "\n".join(table(list(systems), cells, lambda name: name not in refs))


@click.command()
@click.option("--model", "model_path", default=None,
              help="CTranslate2 Whisper folder (default: the bundled tiny.en).")
@click.option("--threads", default=2, show_default=True, help="CPU threads for every system.")
@click.option("--mode", "modes", multiple=True, help="batchscribe options of one engine run "
              "(repeatable; default: aligned/tokens, with and without conditioning).")
@click.option("--language", default=None, help="Language for every system (default: detect).")
@click.option("--set-dir", default=DEFAULT_OUT, show_default=True)
@click.option("--keep", is_flag=True, help="Print the hypotheses too.")
@click.option("--results", default=RESULTS, show_default=True)
@click.option("--score", "scored", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Run nothing: score the systems of a bench/gpu.py gpu_texts.json made on the "
              "long-form set (ids id#copy), per file and per kind of copy.")
def main(model_path: str | None, threads: int, modes: tuple[str, ...], language: str | None,
         set_dir: str, keep: bool, results: str, scored: str | None) -> None:
    rows = load_set(set_dir)
    refs = references(rows)
    if scored is not None:
        click.echo(score_gpu_texts(scored, refs))
        return
    model = model_path or default_model()
    work = tempfile.mkdtemp(prefix="longform-")
    manifest = write_manifest(rows, os.path.join(work, "manifest.parquet"))
    runs: list[tuple[str, dict[str, str], float]] = []
    fw, measured = run_fw_loop("loop", manifest, model, threads, work, language)
    runs.append(("faster-whisper transcribe(vad_filter=True)", fw["texts"], measured.wall_s))
    shared = ["--model", model, *(["--language", language] if language else [])]
    for n, mode in enumerate(modes or DEFAULT_MODES):
        _, texts, measured = run_engine(manifest, os.path.join(work, f"engine-{n}"),
                                        [*shared, *mode.split()], threads)
        runs.append((f"batchscribe {mode}", texts, measured.wall_s))
    by_group = groups(list(refs))
    lines = [f"Long-form set: {len(rows)} files, {audio_seconds(rows):.0f} s; model "
             f"{os.path.basename(model)}, int8, CPU, {threads} threads. WER % / deletions; "
             "wall s includes start-up.",
             *table([label for label, _, _ in runs],
                    [scores(refs, texts, by_group) for _, texts, _ in runs],
                    lambda name: len(by_group[name]) > 1)]
    lines.append("| wall s | " + " | ".join(f"{w:.0f}" for _, _, w in runs) + " |")
    text = "\n".join(lines)
    click.echo(text)
    if keep:
        for label, texts, _ in runs:
            click.echo(f"\n### {label}")
            for i in refs:
                click.echo(f"{i}: {texts.get(i, '')}")
    append_results(results, "Long-form accuracy (bench/longform.py)", text)


if __name__ == "__main__":
    main()
