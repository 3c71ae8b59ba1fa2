"""The corpus commands: `manifest`, `eval`, `export` and `errors`."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from engine.cli.common import counter, failure, with_flag_hints
from engine.errors import EngineError


@click.command()
@click.argument("audio_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The manifest to write (Parquet).")
@click.option("--include", multiple=True, help="Take only the audio files that match this "
              "glob (repeatable; audio and video extensions are always required).")
@click.option("--exclude", multiple=True, help="Glob of files to leave out (repeatable).")
@click.option("--references", is_flag=True,
              help="Read reference text from name.txt sidecars or LibriSpeech *.trans.txt.")
@click.option("--reference-table", type=click.Path(exists=True, dir_okay=False), default=None,
              help="References from a table (.tsv, .csv, .parquet): a file or id column and a "
              "text column; its ids become the manifest's ids.")
@click.option("-j", "--workers", type=click.IntRange(min=1), default=8, show_default=True,
              help="Files probed in parallel.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def manifest(audio_dir: str, output: str, include: tuple[str, ...], exclude: tuple[str, ...],
             references: bool, reference_table: str | None, workers: int, as_json: bool,
             quiet: bool) -> None:
    """Scan AUDIO_DIR (recursively) into a Parquet manifest, one row per audio file.

    Headers are probed, not decoded: duration, sample rate, channels, format, size. Files that
    cannot be probed stay in the manifest with an `error`. Ids are the paths relative to
    AUDIO_DIR, or the references table's ids.

    \b
    Example:
      batchscribe manifest corpus/ -o corpus.parquet --references
      batchscribe manifest corpus/ -o corpus.parquet --reference-table corpus/manifest.tsv
      batchscribe manifest corpus/ -o calls.parquet --include 'calls/*'
    """
    import os

    from engine.corpus.scan import ScanOptions, scan_rows, write_manifest

    options = ScanOptions(include=include, exclude=exclude, references=references,
                          workers=workers, reference_table=reference_table)
    bar = counter(enabled=not quiet and sys.stderr.isatty(), unit="file")
    try:
        summary = write_manifest(
            scan_rows(audio_dir, os.path.dirname(os.path.abspath(output)), options), output,
            on_row=lambda row: bar.update(1))
    except EngineError as e:
        raise failure(str(e)) from e
    finally:
        bar.close()
    report = {"files": summary.files, "audio_hours": round(summary.audio_s / 3600, 4),
              "errors": summary.errors, "with_reference": summary.with_reference,
              "formats": dict(summary.formats.most_common()), "manifest": output}
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        formats = ", ".join(f"{k} {v}" for k, v in summary.formats.most_common())
        found = f", {summary.with_reference} with a reference" \
            if references or reference_table else ""
        click.echo(f"{summary.files} files, {report['audio_hours']:.3f} h, {summary.errors} "
                   f"unreadable{found}; {formats or 'no files'} -> {output}", err=True)
    if (references or reference_table) and summary.files and not summary.with_reference:
        click.echo("warning: no reference found (looked for " + _where(reference_table,
                   references) + ")", err=True)


def _where(reference_table: str | None, sidecars: bool) -> str:
    places = [f"the file or id column of {reference_table}"] if reference_table else []
    if sidecars:
        places.append("NAME.txt beside each file and LibriSpeech *.trans.txt listings")
    return " and ".join(places)


@click.command("eval")
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
        raise failure(with_flag_hints(str(e))) from e
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


@click.command("export")
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

    A file is named after the id without its audio extension (jfk.flac -> jfk.srt); ids that
    would share a name keep their extension, or get a short hash. Subtitles (srt, vtt) and tsv
    have readable cues: at most 7 s and two lines of 42 characters, split on word times when
    the run had --word-timestamps; --words gives one cue per word. txt is the text; json the
    whole row. Error rows get no file. Works on a folder a run is still writing; OUTPUT_DIR and
    --output may be URIs (s3://...).

    \b
    Example:
      batchscribe export out/ --format srt --format vtt -o subtitles/
    """
    from engine.corpus.export import export

    try:
        summary = export(output_dir, target, formats, words=words)
    except EngineError as e:
        raise failure(str(e)) from e
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


@click.command("errors")
@click.argument("output_dir")
@click.option("-n", "--limit", type=click.IntRange(min=0), default=None,
              help="Show the first N error rows [default: all].")
@click.option("--json", "as_json", is_flag=True, help="Print the error rows as JSON on stdout.")
def errors_command(output_dir: str, limit: int | None, as_json: bool) -> None:
    """List the error rows of a transcription OUTPUT_DIR: id, kind and message, one per line.

    The kind is `permanent` (not audio, corrupt: a rerun skips it) or `transient` (a rerun
    retries it). Tab-separated on stdout, the count on stderr.

    \b
    Example:
      batchscribe errors out/
      batchscribe errors out/ --json | jq -r '.rows[].id'
    """
    from engine.corpus.errors import list_errors

    try:
        listing = list_errors(output_dir, limit)
    except EngineError as e:
        raise failure(str(e)) from e
    if as_json:
        click.echo(json.dumps({"total": listing.total, "rows": [
            {"id": r.item_id, "kind": r.kind, "message": r.message} for r in listing.rows]},
            indent=2, sort_keys=True))
        return
    for row in listing.rows:
        click.echo(f"{row.item_id}\t{row.kind or '-'}\t{row.message}")
    shown = "" if len(listing.rows) == listing.total else f", {len(listing.rows)} shown"
    click.echo(f"{listing.total} error rows{shown}", err=True)
