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

from engine.cli.common import failure, model_hint, with_flag_hints
from engine.cli.corpus import errors_command, eval_command, export_command, manifest
from engine.config import TranscribeConfig
from engine.errors import EngineError
from engine.options import click_options, from_cli
from engine.progress import EVERY_S, Mode, Progress

EXIT_ITEM_ERRORS = 3
SHOWN_ERRORS = 10  # error rows listed at the end of a run


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
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or progress lines.")
@click.option("--progress-every", type=click.FloatRange(min=0.1), default=EVERY_S,
              show_default=True, metavar="SECONDS",
              help="When stderr is not a terminal (a log, nohup, CI): a progress line this often.")
def transcribe(manifest: str, output: str, as_json: bool, quiet: bool, progress_every: float,
               **options: Any) -> None:
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
    _run_and_report(config, as_json, _progress_mode(quiet), progress_every)


@cli.command("run")
@click.argument("job_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or progress lines.")
@click.option("--progress-every", type=click.FloatRange(min=0.1), default=EVERY_S,
              show_default=True, metavar="SECONDS",
              help="When stderr is not a terminal (a log, nohup, CI): a progress line this often.")
def run_job(job_file: str, as_json: bool, quiet: bool, progress_every: float) -> None:
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
        raise failure(str(e)) from e
    _check_job_manifest(config.manifest, job_file)
    _run_and_report(config, as_json, _progress_mode(quiet), progress_every)


def _check_job_manifest(manifest: str, job_file: str) -> None:
    """A relative local manifest that is not there: say where relative paths are taken from."""
    from engine.io.storage import is_uri

    if is_uri(manifest) or os.path.isabs(manifest) or any(c in manifest for c in "*?["):
        return
    if not os.path.exists(manifest):
        beside = os.path.join(os.path.dirname(os.path.abspath(job_file)), manifest)
        hint = (f"; it is there beside the job file: run from {os.path.dirname(beside)} or "
                "give an absolute path" if os.path.exists(beside) else "")
        raise failure(f"{job_file}: manifest {manifest} not found: a relative path in a job "
                      f"file is taken from the current folder ({os.getcwd()}){hint}")


def _with_named_model(config: TranscribeConfig) -> TranscribeConfig:
    """`--model base`: the folder of a named model (engine.named_models), assembled and
    checked; any other value is left to the model loader."""
    from dataclasses import replace

    from engine.named_models import NAMED_MODELS, named_model_path

    name = config.model.path
    if name not in NAMED_MODELS or os.path.exists(name):
        return config
    try:
        path = named_model_path(name)
    except EngineError as e:
        raise failure(str(e)) from e
    return replace(config, model=replace(config.model, path=path))


def _progress_mode(quiet: bool) -> Mode:
    return "off" if quiet else "bar" if sys.stderr.isatty() else "lines"


def _run_and_report(config: TranscribeConfig, as_json: bool, mode: Mode,
                    every_s: float) -> None:
    from engine.io.storage import redact

    config = _with_named_model(config)
    report = _run_transcription(config, Progress(mode, every_s))
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
        _list_errors(config.output)
        sys.exit(EXIT_ITEM_ERRORS)


def _list_errors(output: str) -> None:
    """The folder's first error rows on stderr, and the command that lists them all."""
    from engine.corpus.errors import list_errors
    from engine.io.storage import redact

    listing = list_errors(output, SHOWN_ERRORS)
    click.echo(f"{listing.total} error rows in {redact(output)}:", err=True)
    for row in listing.rows:
        click.echo(f"  {row.item_id} ({row.kind or 'error'}): {row.message}", err=True)
    if listing.total > len(listing.rows):
        click.echo(f"  ... {listing.total - len(listing.rows)} more: batchscribe errors "
                   f"{redact(output)}", err=True)


def _final_line(report: dict[str, Any], output: str) -> str:
    """"30 rows: 8 already done, 22 transcribed (20 ok, 0 empty, 2 error); ..." """
    from engine.io.storage import redact

    counts = report["counts"]
    if report["rows"] == 0 and report["manifest_rows"]:
        return (f"nothing to do: all {report['manifest_rows']} rows of the manifest are already "
                f"in {redact(output)}")
    return (f"{report['manifest_rows']} rows: {report['skipped_already_done']} already done, "
            f"{report['rows']} transcribed ({counts['ok']} ok, {counts['empty']} empty, "
            f"{counts['error']} error); {report['audio_hours']:.3f} h of audio at "
            f"{report['audio_s_per_s']:.1f}x realtime -> {redact(output)}")


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
        raise failure(with_flag_hints(str(e))) from e
    if as_json:
        click.echo(json.dumps(metadata, indent=2, sort_keys=True))
    else:
        click.echo(f"{metadata['source']} -> {output} ({quantization}, {metadata['n_mels']} mel "
                   f"bins, {metadata['decoder_layers']} decoder layers, vocabulary "
                   f"{metadata['vocab_size']})", err=True)
        if verify:
            click.echo(_parity_sentence(metadata["parity"]), err=True)
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


def _run_transcription(config: TranscribeConfig, progress: Progress) -> dict[str, Any]:
    from engine.backends import transcribe as run
    from engine.stopping import Stopped, stop_on_signals

    with progress, stop_on_signals():
        try:
            return run(config, on_outcome=progress.update, on_start=progress.start,
                       on_loading=progress.loading)
        except EngineError as e:
            raise failure(with_flag_hints(model_hint(str(e), config.model.path))) from e
        except Stopped as e:  # the rows finished so far were committed on the way out
            from engine.io.storage import redact

            written, before = progress.kept()
            click.echo(f"\nstopped by {e.name}: {written + before} rows are kept in "
                       f"{redact(config.output)} ({written} written by this run, {before} "
                       "before it); rerun the same command to go on", err=True)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(e.exit_code)  # not waiting for the model's batch in flight (its rows are lost)


def _parity_sentence(parity: dict[str, Any]) -> str:
    """`convert --verify`'s result as a sentence."""
    agree = f"{parity['argmax_agree']} of {parity['steps']} greedy steps chose the same token"
    diff = f"largest logit difference {parity['max_abs_diff']}"
    if parity["check"].startswith("exact"):
        verdict = "parity passed" if parity["passed"] else "parity FAILED"
        return (f"{verdict}: {agree} and the {diff} (at most 1e-3 needed, float32 against "
                "the checkpoint)")
    return (f"the quantized model loads and decodes: {agree} as the checkpoint, {diff} "
            "(quantized weights differ by rounding; not an exact check)")


for command in (manifest, eval_command, export_command, errors_command):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="batchscribe")
