"""What both backends share around the stages: opening a job, the run summary and its report."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.config import TranscribeConfig
from engine.decode.stream import Timings
from engine.io.manifest import Manifest, open_manifest
from engine.io.writer import PartWriter, output_schema
from engine.types import ItemError, Outcome


@dataclass
class RunSummary:
    """What a run did; written to run.json and printed by `--json`."""

    counts: Counter[str] = field(default_factory=Counter)
    audio_s: float = 0.0
    speech_s: float = 0.0
    wall_s: float = 0.0
    skipped_done: int = 0
    stopped: str | None = None
    timings: Timings = field(default_factory=Timings)

    def add(self, outcome: Outcome) -> None:
        if isinstance(outcome, ItemError):
            self.counts["error"] += 1
            return
        self.counts[outcome.status] += 1
        self.audio_s += outcome.duration_s
        self.speech_s += outcome.speech_s

    @property
    def rows(self) -> int:
        return sum(self.counts.values())


def open_job(config: TranscribeConfig) -> tuple[Manifest, PartWriter]:
    """The checked manifest (schema and ids) and the output folder's writer."""
    manifest = open_manifest(config.manifest)
    manifest.check_ids()
    passthrough = [manifest.schema.field(name) for name in config.run.passthrough]
    writer = PartWriter(config.output, output_schema(passthrough),
                        config.run.rows_per_part, config.run.part_seconds)
    return manifest, writer


def report_name(config: TranscribeConfig) -> str:
    index, count = config.run.shard
    return "run.json" if count == 1 else f"run-shard-{index}-of-{count}.json"


def build_report(config: TranscribeConfig, model: dict[str, Any],
                 summary: RunSummary) -> dict[str, Any]:
    """The run summary: model, options, versions, counts, hours, speed, stage timings."""
    options = {"decode": asdict(config.decode), "vad": asdict(config.vad),
               "batch": asdict(config.batch), "run": asdict(config.run)}
    if config.backend == "ray":
        options["ray"] = asdict(config.ray)
    return {
        "model": model,
        "backend": config.backend,
        "manifest": config.manifest,
        "output": config.output,
        "options": options,
        "versions": library_versions(),
        "counts": {s: summary.counts.get(s, 0) for s in ("ok", "empty", "error")},
        "rows": summary.rows,
        "skipped_already_done": summary.skipped_done,
        "audio_hours": round(summary.audio_s / 3600, 4),
        "speech_hours": round(summary.speech_s / 3600, 4),
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
