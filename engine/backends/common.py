"""The steps of the job template (`job.run_job`) that are not its sequence: opening a job, the
run summary and its report."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.config import TranscribeConfig
from engine.decode.stream import Timings
from engine.errors import ManifestError, OutputError
from engine.io import lock, runlog, storage
from engine.io.idset import IdSet
from engine.io.manifest import Manifest, in_shard, open_manifest
from engine.io.writer import PartWriter, output_schema, read_part
from engine.types import ItemError, Outcome

# A row whose decode heard under this share of a file this long is counted in the report: speech
# that VAD missed is otherwise invisible (the row says ok, its text reads well)
LITTLE_SPEECH_FILE_S = 60.0
LITTLE_SPEECH_SHARE = 0.5


@dataclass
class RunSummary:
    """What a run did; written to the output's .batchscribe/runs/ and printed by `--json`."""

    counts: Counter[str] = field(default_factory=Counter)
    audio_s: float = 0.0
    speech_s: float = 0.0
    little_speech: int = 0  # long files of which VAD kept under half (issue 24)
    wall_s: float = 0.0
    skipped_done: int = 0
    manifest_rows: int = 0
    mixed: list[str] = field(default_factory=list)
    stopped: str | None = None
    timings: Timings = field(default_factory=Timings)

    def add(self, outcome: Outcome) -> None:
        """Count a row as it is written (the local backend)."""
        if isinstance(outcome, ItemError):
            self.add_row("error", None, None)
        else:
            self.add_row(outcome.status, outcome.duration_s, outcome.speech_s)

    def add_row(self, status: str, duration_s: float | None, speech_s: float | None) -> None:
        """Count one row; an error row's durations are not counted."""
        self.counts[status] += 1
        if status == "error" or duration_s is None:
            return
        speech_s = speech_s or 0.0
        self.audio_s += duration_s
        self.speech_s += speech_s
        if duration_s >= LITTLE_SPEECH_FILE_S and speech_s < LITTLE_SPEECH_SHARE * duration_s:
            self.little_speech += 1

    def add_parts(self, parts: list[str]) -> None:
        """Count the rows of parts written by others (Ray's tasks), as `add` counts them."""
        for path in parts:
            table = read_part(path, ["status", "duration_s", "speech_s"])
            for row in table.to_pylist():
                self.add_row(row["status"], row["duration_s"], row["speech_s"])

    @property
    def rows(self) -> int:
        return sum(self.counts.values())


def open_job(config: TranscribeConfig) -> tuple[Manifest, PartWriter]:
    """The checked manifest (schema and ids) and the output folder's writer."""
    manifest = open_manifest(config.manifest)
    manifest.check_ids()
    missing = [name for name in config.run.passthrough if name not in manifest.schema.names]
    if missing:
        raise ManifestError(
            f"passthrough column(s) {', '.join(missing)} not in the manifest {config.manifest}; "
            f"it has: {', '.join(manifest.schema.names)}")
    passthrough = [manifest.schema.field(name) for name in config.run.passthrough]
    writer = PartWriter(config.output, output_schema(passthrough),
                        config.run.rows_per_part, config.run.part_seconds, config.run.shard)
    return manifest, writer


def hold_output(writer: PartWriter) -> lock.FolderLock:
    """Take the output folder's lock for this run's shard (refused while another run writes
    it), then remove what killed runs of this shard left there; release it when the run ends.

    Raises:
        OutputError: another live run writes the shard, or the folder cannot be written.
    """
    held = lock.acquire(writer.output_dir, writer.shard)
    try:
        writer.remove_temporaries()
    except OSError as e:
        held.release()
        raise OutputError(f"cannot clean the output folder {storage.redact(writer.output_dir)}: "
                          f"{e}") from e
    return held


def count_rows(manifest: Manifest, done: IdSet, shard: tuple[int, int]) -> tuple[int, int]:
    """This shard's manifest rows, and how many of them the output already holds."""
    total = already = 0
    ids: list[str] = []
    for item_id in manifest.iter_ids():
        if in_shard(item_id, shard):
            ids.append(item_id)
        if len(ids) >= 4096:
            total, already = total + len(ids), already + int(done.contains(ids).sum())
            ids = []
    return total + len(ids), already + int(done.contains(ids).sum())


def check_rerun(config: TranscribeConfig, model: dict[str, Any]) -> list[str]:
    """Refuse a rerun whose model or decoding options differ from those that wrote the output's
    rows, unless `run.allow_mixed`; returns the differences allowed."""
    current = runlog.settings({"model": model, "options": _options(config)})
    return runlog.check_settings(config.output, current, config.run.allow_mixed)


def start_report(writer: PartWriter, config: TranscribeConfig, model: dict[str, Any],
                 summary: RunSummary) -> None:
    """Write the run's record before its first row, so a run killed at any moment leaves its
    settings (model, compute type, options) for the next run's check."""
    runlog.start_record(writer, build_report(config, model, summary))


def save_report(writer: PartWriter, report: dict[str, Any],
                state: str = "finished") -> dict[str, Any]:
    """Rewrite the run's record (`state`) and the folder's summary beside the parts; the
    report, with the folder's summary under "folder"."""
    folder = runlog.write_metadata(writer, report, state)
    return {**report, "folder": folder}


def _options(config: TranscribeConfig) -> dict[str, Any]:
    options = {"decode": asdict(config.decode), "vad": asdict(config.vad),
               "batch": asdict(config.batch), "run": asdict(config.run)}
    if config.backend == "ray":
        options["ray"] = asdict(config.ray)
    return options


def build_report(config: TranscribeConfig, model: dict[str, Any],
                 summary: RunSummary) -> dict[str, Any]:
    """The run summary: model, options, versions, counts, hours, speed, stage timings."""
    return {
        "model": model,
        "backend": config.backend,
        "manifest": storage.redact(config.manifest),  # no user:secret@ or signed query
        "output": storage.redact(config.output),
        "options": _options(config),
        "versions": library_versions(),
        "counts": {s: summary.counts.get(s, 0) for s in ("ok", "empty", "error")},
        "rows": summary.rows,
        "manifest_rows": summary.manifest_rows,
        "skipped_already_done": summary.skipped_done,
        "mixed_settings": summary.mixed,
        "audio_hours": round(summary.audio_s / 3600, 4),
        "speech_hours": round(summary.speech_s / 3600, 4),
        "little_speech_rows": summary.little_speech,
        "wall_s": round(summary.wall_s, 3),
        "audio_s_per_s": round(summary.audio_s / summary.wall_s, 2) if summary.wall_s else 0.0,
        "stopped": summary.stopped,
        "timings": {k: round(v, 3) for k, v in asdict(summary.timings).items()},
    }


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("batchscribe", "ctranslate2", "faster-whisper", "pyarrow", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out
