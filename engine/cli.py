"""The `batchscribe` command line: parse options, build configs, call the engine, render.

Exit codes: 0 success; 1 failure (bad manifest, model, output, error budget exceeded, decode
workers that cannot start); 2 usage error; 3 finished, but some rows are errors; 130 stopped by
SIGINT (Ctrl-C), 143 by SIGTERM (rows finished so far are committed; rerun to go on).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from engine.config import TranscribeConfig
from engine.errors import EngineError
from engine.options import click_options, from_cli

EXIT_ITEM_ERRORS = 3


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="batchscribe")
def cli() -> None:
    """batchscribe: batch speech transcription on CTranslate2 Whisper, Parquet in and out."""


@cli.command()
@click.argument("manifest")
@click.option("-o", "--output", required=True,
              help="Output folder (Parquet parts and .batchscribe/ run records); rerun into it "
              "to resume.")
@click_options
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def transcribe(manifest: str, output: str, as_json: bool, quiet: bool, **options: Any) -> None:
    """Transcribe every row of a Parquet MANIFEST (file, folder or glob) into OUTPUT.

    Every option is also a key of a job file (see `batchscribe run`).

    \b
    Example:
      batchscribe transcribe examples/manifest.parquet -o transcripts/
      batchscribe transcribe 'corpus/*.parquet' -o out/ --shard 0/4 --json
    """
    try:
        config = from_cli(manifest, output, options)
    except EngineError as e:
        raise click.UsageError(str(e)) from e
    _run_and_report(config, as_json, quiet)


@cli.command("run")
@click.argument("job_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def run_job(job_file: str, as_json: bool, quiet: bool) -> None:
    """Run the job described by JOB_FILE (TOML), locally or on Ray as it says.

    The file's keys are `transcribe`'s options: top-level manifest, output and backend, then
    [model], [decode], [vad], [batch], [run] and [ray] sections. Unknown keys are errors.
    Relative paths are taken from the current folder.

    \b
    Example:
      batchscribe run jobs/local.toml
      ray job submit --working-dir . -- batchscribe run jobs/cluster-gpu.toml
    """
    from engine.options import load_job

    try:
        config = load_job(job_file)
    except EngineError as e:
        raise _failure(str(e)) from e
    _run_and_report(config, as_json, quiet)


def _run_and_report(config: TranscribeConfig, as_json: bool, quiet: bool) -> None:
    from engine.io.storage import redact

    report = _run_transcription(config, show_progress=not quiet and sys.stderr.isatty())
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        click.echo(_final_line(report, config.output), err=True)
    for difference in report["mixed_settings"]:
        click.echo(f"warning: rows of {redact(config.output)} were written with other "
                   f"settings: {difference}", err=True)
    if report.get("little_speech_rows"):
        click.echo(f"{report['little_speech_rows']} row(s) of a minute or more kept under half "
                   "of their audio as speech (speech_s vs duration_s): check that VAD did not "
                   "drop speech there, or rerun them with --no-vad", err=True)
    if report["counts"]["error"]:
        sys.exit(EXIT_ITEM_ERRORS)


def _final_line(report: dict[str, Any], output: str) -> str:
    """"30 rows: 8 already done, 22 transcribed (20 ok, 0 empty, 2 error); ..." """
    from engine.io.storage import redact

    counts = report["counts"]
    return (f"{report['manifest_rows']} rows: {report['skipped_already_done']} already done, "
            f"{report['rows']} transcribed ({counts['ok']} ok, {counts['empty']} empty, "
            f"{counts['error']} error); {report['audio_hours']:.3f} h of audio at "
            f"{report['audio_s_per_s']:.1f}x realtime -> {redact(output)}")


@cli.command()
@click.argument("audio_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The manifest to write (Parquet).")
@click.option("--include", multiple=True, help="Glob of files to take (repeatable) "
              "[default: common audio and video extensions].")
@click.option("--exclude", multiple=True, help="Glob of files to leave out (repeatable).")
@click.option("--references", is_flag=True,
              help="Read reference text from name.txt sidecars or LibriSpeech *.trans.txt.")
@click.option("-j", "--workers", type=click.IntRange(min=1), default=8, show_default=True,
              help="Files probed in parallel.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def manifest(audio_dir: str, output: str, include: tuple[str, ...], exclude: tuple[str, ...],
             references: bool, workers: int, as_json: bool, quiet: bool) -> None:
    """Scan AUDIO_DIR (recursively) into a Parquet manifest, one row per audio file.

    Headers are probed, not decoded: duration, sample rate, channels, format, size. Files that
    cannot be probed stay in the manifest with an `error`.

    \b
    Example:
      batchscribe manifest corpus/ -o corpus.parquet --references
    """
    import os

    from engine.corpus.scan import AUDIO_PATTERNS, ScanOptions, scan_rows, write_manifest

    options = ScanOptions(include=include or AUDIO_PATTERNS, exclude=exclude,
                          references=references, workers=workers)
    manifest_dir = os.path.dirname(os.path.abspath(output))
    bar = _counter(enabled=not quiet and sys.stderr.isatty(), unit="file")
    try:
        summary = write_manifest(scan_rows(audio_dir, manifest_dir, options), output,
                                 on_row=lambda row: bar.update(1))
    except EngineError as e:
        raise _failure(str(e)) from e
    finally:
        bar.close()
    report = {"files": summary.files, "audio_hours": round(summary.audio_s / 3600, 4),
              "errors": summary.errors, "with_reference": summary.with_reference,
              "formats": dict(summary.formats.most_common()), "manifest": output}
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        formats = ", ".join(f"{k} {v}" for k, v in summary.formats.most_common())
        click.echo(f"{summary.files} files, {report['audio_hours']:.3f} h, {summary.errors} "
                   f"unreadable; {formats or 'no files'} -> {output}", err=True)


@cli.command()
@click.argument("source")
@click.argument("output", type=click.Path(file_okay=False))
@click.option("--quantization", type=click.Choice(
    ["int8", "int8_float16", "int8_bfloat16", "float16", "bfloat16", "float32"]),
    default="float16", show_default=True, help="Weight type of the converted model.")
@click.option("--tokenizer-from", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder with the tokenizer, when SOURCE (a checkpoint-N folder) lacks it.")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists (atomically).")
@click.option("--verify", is_flag=True,
              help="Check the converted model's logits against the checkpoint's, step by step.")
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as JSON on stdout.")
def convert(source: str, output: str, quantization: str, tokenizer_from: str | None,
            force: bool, verify: bool, as_json: bool) -> None:
    """Convert a Whisper checkpoint SOURCE into a CTranslate2 model in OUTPUT.

    SOURCE is a local folder: a Hugging Face save_pretrained output, a sharded checkpoint, a
    Trainer checkpoint-N folder (its tokenizer is looked for in the run folder above it), or a
    KerasHub WhisperBackbone preset (save_to_preset). Needs the
    convert extra (torch, transformers).

    \b
    Example:
      batchscribe convert runs/whisper-ft/checkpoint-2000 models/ft-int8 --quantization int8
    """
    from converters import convert as run_conversion

    try:
        metadata = run_conversion(source, output, quantization, force=force,
                                  tokenizer_from=tokenizer_from)
        if verify:
            metadata["parity"] = _verify(output, metadata["source"], quantization)
    except EngineError as e:
        raise _failure(_with_flag_hints(str(e))) from e
    if as_json:
        click.echo(json.dumps(metadata, indent=2, sort_keys=True))
    else:
        click.echo(f"{metadata['source']} -> {output} ({quantization}, {metadata['n_mels']} mel "
                   f"bins, {metadata['decoder_layers']} decoder layers, vocabulary "
                   f"{metadata['vocab_size']})", err=True)
        if verify:
            click.echo(f"parity: {metadata['parity']}", err=True)
    if verify and not metadata["parity"]["passed"]:
        sys.exit(1)


def _verify(output: str, source: str, quantization: str) -> dict[str, Any]:
    from converters.parity import check_parity

    compute_type = "float32" if quantization == "float32" else "int8" if "int8" in quantization \
        else "float32"
    report = check_parity(output, source, compute_type=compute_type)
    exact = quantization == "float32"
    # float32 must match to 1e-3 with the same greedy choice at every step; quantized weights
    # differ by rounding, so for them the check is that the model loads and decodes, and the
    # closeness is reported
    return {"check": "exact: logits within 1e-3, same argmax" if exact else
            "loads and decodes; closeness reported",
            "steps": report.steps, "argmax_agree": report.argmax_agree,
            "max_abs_diff": round(report.max_abs_diff, 6),
            "passed": report.passes(1e-3) if exact else report.steps > 0}


def _counter(enabled: bool, unit: str) -> Any:
    from tqdm import tqdm

    return tqdm(disable=not enabled, unit=unit, dynamic_ncols=True)


@cli.command("eval")
@click.argument("output_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--reference-column", required=True,
              help="Column holding the reference text (in the output, or in --manifest).")
@click.option("--manifest", "manifest_path", default=None,
              help="Take references from this manifest, joined on id.")
@click.option("--per-row", type=click.Path(dir_okay=False), default=None,
              help="Write each row's WER to this Parquet file.")
@click.option("--worst", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many of the worst rows to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def eval_command(output_dir: str, reference_column: str, manifest_path: str | None,
                 per_row: str | None, worst: int, as_json: bool) -> None:
    """Word error rate of a transcription OUTPUT_DIR against reference texts.

    Both sides go through the Whisper English text normaliser. Corpus WER is total errors over
    total reference words. Rows that failed or have no reference are skipped and counted.

    \b
    Example:
      batchscribe transcribe m.parquet -o out/ --passthrough reference
      batchscribe eval out/ --reference-column reference
    """
    from engine.corpus.evaluate import evaluate_output

    try:
        report = evaluate_output(output_dir, reference_column, manifest_path)
    except EngineError as e:
        raise _failure(_with_flag_hints(str(e))) from e
    summary = report.summary(worst)
    if per_row:
        _write_per_row(report, per_row)
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
        return
    click.echo(f"WER {summary['wer']:.2f}%  (S {summary['substitutions']}, D "
               f"{summary['deletions']}, I {summary['insertions']} over "
               f"{summary['reference_words']} words)  CER {summary['cer']:.2f}%")
    click.echo(f"rows evaluated {summary['rows_evaluated']}, skipped {summary['rows_skipped']}")
    for row in summary["worst_rows"]:  # type: ignore[attr-defined]
        click.echo(f"  {row['wer']:6.1f}%  {row['id']}: {row['hypothesis'][:70]!r}")
    for short in report.shortened:
        click.echo(f"note: the normaliser keeps {short.words_after} of the {short.words_before} "
                   f"words of {short.item_id}'s reference", err=True)


@cli.command("export")
@click.argument("output_dir")
@click.option("-f", "--format", "formats", multiple=True, required=True,
              type=click.Choice(["srt", "vtt", "txt", "tsv", "json"]),
              help="File format (repeatable: several formats at once).")
@click.option("-o", "--output", "target", required=True,
              help="Folder for the files (local or a URI); created if missing.")
@click.option("--words", is_flag=True,
              help="Subtitles with one cue per word (needs a run with --word-timestamps).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
def export_command(output_dir: str, formats: tuple[str, ...], target: str, words: bool,
                   as_json: bool) -> None:
    """Write each row of a transcription OUTPUT_DIR as a file per format, named from its id.

    Subtitles (srt, vtt) and tsv take their cues from the segments, or from the words with
    --words; txt is the text; json the whole row. Error rows get no file. Works on a folder a
    run is still writing; OUTPUT_DIR and --output may be URIs (s3://...).

    \b
    Example:
      batchscribe export out/ --format srt --format vtt -o subtitles/
    """
    from engine.corpus.export import export

    try:
        summary = export(output_dir, target, formats, words=words)
    except EngineError as e:
        raise _failure(str(e)) from e
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2, sort_keys=True))
    else:
        from engine.io.storage import redact

        click.echo(f"{summary.rows} rows: {summary.files} files ({', '.join(summary.formats)}), "
                   f"{summary.skipped_errors} error rows skipped -> {redact(target)}", err=True)


def _write_per_row(report: Any, path: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({
        "id": [r.item_id for r in report.rows], "wer": [r.wer for r in report.rows],
        "errors": [r.errors for r in report.rows],
        "reference_words": [r.reference_words for r in report.rows],
        "reference": [r.reference for r in report.rows],
        "hypothesis": [r.hypothesis for r in report.rows],
    }), path)


def _run_transcription(config: TranscribeConfig, show_progress: bool) -> dict[str, Any]:
    from engine.backends import transcribe as run
    from engine.progress import Progress
    from engine.stopping import Stopped, stop_on_signals

    with Progress(enabled=show_progress) as progress, stop_on_signals():
        try:
            return run(config, on_outcome=progress.update, on_start=progress.start)
        except EngineError as e:
            raise _failure(_with_flag_hints(str(e))) from e
        except Stopped as e:  # the rows finished so far were committed on the way out
            from engine.io.storage import redact

            click.echo(f"\nstopped by {e.name}: rows finished so far are kept in "
                       f"{redact(config.output)}; rerun the same command to go on", err=True)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(e.exit_code)  # not waiting for the model's batch in flight (its rows are lost)


def _failure(message: str) -> click.ClickException:
    """The one-line error (exit 1) for a library error, without secrets of the URIs it names
    (a library's own message, such as fsspec's, may repeat a URI whole)."""
    from engine.io.storage import redact

    return click.ClickException(redact(message))


def _with_flag_hints(message: str) -> str:
    """Library messages name no flags; the CLI adds the flag that fixes the problem."""
    if "error budget" in message:
        return message + " (raise --max-errors to go on)"
    if "passthrough column" in message:
        return message + " (check --passthrough)"
    if "give the folder that holds it" in message:
        return message + " (--tokenizer-from)"
    if "overwrite it" in message:
        return message + " (--force)"
    if "allow mixed settings" in message:
        return message + " (--allow-mixed)"
    if "pass the manifest that holds it" in message:
        return message + " (--manifest)"
    return message


def main() -> None:
    cli(prog_name="batchscribe")
