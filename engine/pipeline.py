"""The only place where the stages are wired together.

manifest -> decode/VAD/features (process pool) -> language detection -> batcher -> model (async)
-> collector -> writer. Every stage is a bounded iterator, so memory stays flat whatever the
manifest's size, and the model decodes one batch while the pool prepares the next files.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from typing import Any

from engine.assemble import Collector, finish
from engine.batching import Batcher
from engine.config import TranscribeConfig
from engine.errors import ConfigError, TooManyErrors
from engine.manifest import Manifest, open_manifest
from engine.pool import OrderedPool
from engine.prepare import Preparer
from engine.runner import ModelRunner
from engine.types import (
    AudioItem,
    ChunkRequest,
    ChunkResult,
    ItemError,
    ItemResult,
    Outcome,
    PackedChunk,
    PreparedItem,
)
from engine.writer import PartWriter, output_schema


@dataclass
class Timings:
    """Where the time went: CPU stage work (summed over workers) and waiting for the model."""

    model_load_s: float = 0.0
    prepare_cpu_s: float = 0.0
    prepare_wait_s: float = 0.0  # the main thread waiting for the decode workers' next file
    model_wait_s: float = 0.0
    batches: int = 0
    chunks: int = 0
    packed_windows: int = 0  # windows shared by several chunks (--pack)
    packed_chunks: int = 0  # chunks in those windows
    unpacked_chunks: int = 0  # of those, decoded alone again: their share looked wrong


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


def transcribe(config: TranscribeConfig,
               on_outcome: Callable[[Outcome, RunSummary], None] | None = None,
               on_start: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run a whole job: read the manifest, transcribe every row not yet done, write the output.

    Args:
        config: The run's options.
        on_outcome: Called after each row is written (progress reporting).
        on_start: Called once with the number of manifest rows, before work starts.

    Returns:
        The run summary, also written as run.json in the output folder.

    Raises:
        EngineError: a bad manifest, model, option or output folder (before any work), or an
            error budget exceeded (after committing the rows done so far).
    """
    if config.backend == "ray":
        from engine.cluster import transcribe_on_ray

        return transcribe_on_ray(config, on_start)
    started = time.monotonic()
    manifest, writer = open_job(config)
    done = writer.done_ids()
    loading = time.monotonic()
    runner = ModelRunner(config.model, config.decode)
    model_load_s = time.monotonic() - loading
    config = replace(config, batch=config.batch.for_device(runner.device))  # recorded in run.json
    _check_language_options(runner, config)
    if on_start is not None:
        on_start(manifest.num_rows)

    summary = RunSummary()
    summary.timings.model_load_s = model_load_s
    items = manifest.items(config.run.passthrough, skip=done, shard=config.run.shard)
    try:
        with OrderedPool(partial(Preparer, config.vad, runner.n_mels), config.run.workers,
                         on_crash=worker_crashed) as pool:
            for outcome in decode_stream(pool.map(items), runner, config, summary.timings):
                writer.write(outcome)
                summary.add(outcome)
                if on_outcome is not None:
                    on_outcome(outcome, summary)
                budget = config.run.max_errors
                if budget is not None and summary.counts["error"] > budget:
                    summary.stopped = f"more than {budget} items failed"
                    break
    finally:
        runner.close()
        writer.commit()
        summary.wall_s = time.monotonic() - started
        summary.skipped_done = len(done)
        report = build_report(config, runner.describe(), summary)
        writer.write_json(report_name(config), report)
    if summary.stopped:
        raise TooManyErrors(f"run stopped: {summary.stopped} (the error budget); "
                            f"rows written so far are kept in {config.output}")
    return report


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


def worker_crashed(item: AudioItem) -> ItemError:
    return ItemError(item, "decode", "WorkerCrash",
                     f"{item.source}: the decode worker died on this file twice (a decoder "
                     "crash, or out of memory)")


def decode_stream(prepared: Iterable[PreparedItem | ItemError], runner: ModelRunner,
                  config: TranscribeConfig, timings: Timings | None = None) -> Iterator[Outcome]:
    """Batch chunks across items, decode them on the replica threads, yield finished rows."""
    batcher = Batcher(config.batch)
    collector = Collector()
    in_flight: deque[Future[list[ChunkResult]]] = deque()
    max_in_flight = runner.concurrency + 1
    timings = timings or Timings()

    def drain(batch: Future[list[ChunkResult]]) -> Iterator[ItemResult]:
        started = time.monotonic()
        results = batch.result()
        timings.model_wait_s += time.monotonic() - started
        timings.batches += 1
        for result in results:
            timings.chunks += 1
            if result.route != "alone":
                timings.packed_chunks += 1
                timings.unpacked_chunks += result.route == "unpacked"
            yield from collector.add(result.chunk, list(result.segments))

    def submit(batch: list[ChunkRequest]) -> Iterator[ItemResult]:
        while len(in_flight) >= max_in_flight:  # backpressure: wait for the oldest batch
            yield from drain(in_flight.popleft())
        timings.packed_windows += sum(isinstance(r.chunk, PackedChunk) for r in batch)
        in_flight.append(runner.submit(batch))

    for p in with_languages(_timed_waits(prepared, timings), runner, config):
        if isinstance(p, ItemError):
            yield p
            continue
        timings.prepare_cpu_s += p.prepare_s
        if not p.chunks:
            yield finish(p, [])
            continue
        collector.expect(p)
        task = p.item.task or config.decode.task
        prompt = p.item.prompt or config.decode.initial_prompt
        language = p.language or "en"
        packable = config.batch.pack and len(p.chunks) == 1
        requests = [runner.request(chunk, language, task, prompt, packable)
                    for chunk in p.chunks]
        for batch in batcher.add(requests):
            yield from submit(batch)
        while in_flight and in_flight[0].done():
            yield from drain(in_flight.popleft())
    for batch in batcher.flush():
        yield from submit(batch)
    while in_flight:
        yield from drain(in_flight.popleft())


def _timed_waits(prepared: Iterable[PreparedItem | ItemError],
                 timings: Timings) -> Iterator[PreparedItem | ItemError]:
    """The prepared items, adding the time spent waiting for each to `prepare_wait_s`."""
    items = iter(prepared)
    while True:
        started = time.monotonic()
        item = next(items, None)
        timings.prepare_wait_s += time.monotonic() - started
        if item is None:
            return
        yield item


def with_languages(prepared: Iterable[PreparedItem | ItemError], runner: ModelRunner,
                   config: TranscribeConfig) -> Iterator[PreparedItem | ItemError]:
    """Give every item its language: its own, the run's, or detected on its first chunk."""
    waiting: list[PreparedItem] = []

    def detect() -> Iterator[PreparedItem]:
        found = runner.detect_languages([p.chunks[0] for p in waiting])
        for p, (language, probability) in zip(waiting, found, strict=True):
            yield replace(p, language=language, language_probability=probability)
        waiting.clear()

    for p in prepared:
        if isinstance(p, ItemError):
            yield p
            continue
        language = p.item.language or config.decode.language
        if language is not None or not runner.is_multilingual:
            problem = _language_problem(runner, language or "en", p.item.task)
            if problem:
                yield ItemError(p.item, "options", "ConfigError",
                                f"row {p.item.item_id}: {problem}")
            else:
                yield replace(p, language=language or "en", language_probability=1.0)
        elif not p.chunks:
            yield p
        else:
            waiting.append(p)
            if len(waiting) >= (config.batch.batch_size or 1):
                yield from detect()
    if waiting:
        yield from detect()


def _language_problem(runner: ModelRunner, language: str, task: str | None) -> str | None:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    if task is not None and task not in ("transcribe", "translate"):
        return f"task {task!r} is not valid; choose transcribe or translate"
    if not runner.is_multilingual:
        if language != "en":
            return f"the model is English-only, so language {language!r} cannot be used"
        if task == "translate":
            return "the model is English-only and cannot translate"
    elif language not in _LANGUAGE_CODES:
        return f"language {language!r} is not a Whisper language code (e.g. en, de, fr, zh)"
    return None


def _check_language_options(runner: ModelRunner, config: TranscribeConfig) -> None:
    language = config.decode.language
    problem = _language_problem(runner, language or "en", config.decode.task)
    if problem:
        raise ConfigError(problem)


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
