"""The model side of a run, shared by both backends: languages, batches across files, decoding.

Prepared items (decode workers' output) -> language per item (given or detected) -> batches of
chunks from many files -> the model's replica threads -> rows regrouped per file, in order.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, replace

from engine.config import TranscribeConfig
from engine.decode.assemble import Collector, finish
from engine.decode.batching import Batcher
from engine.decode.conditioning import PreviousText
from engine.decode.runner import ModelRunner
from engine.errors import ConfigError
from engine.types import (
    ChunkRequest,
    ChunkResult,
    ItemError,
    ItemResult,
    Outcome,
    PackedChunk,
    PreparedItem,
)


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
    continuations: int = 0  # decodes run again from where the decoder left speech out
    continuations_kept: int = 0  # of those, kept: they heard more


def decode_stream(prepared: Iterable[PreparedItem | ItemError], runner: ModelRunner,
                  config: TranscribeConfig, timings: Timings | None = None) -> Iterator[Outcome]:
    """Batch chunks across items, decode them on the replica threads, yield finished rows.

    With `condition_on_previous_text`, a file's chunks go to the batcher one at a time, each
    once the one before is back (`PreviousText`); other files' chunks fill the batches."""
    batcher = Batcher(config.batch)
    collector = Collector()
    in_flight: deque[Future[list[ChunkResult]]] = deque()
    max_in_flight = runner.concurrency + 1
    timings = timings or Timings()
    sequential = (PreviousText(runner, config.decode)
                  if config.decode.condition_on_previous_text else None)
    ready: list[ChunkRequest] = []  # files' next chunks, their previous chunk being back

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
            follow = sequential.follow(result) if sequential is not None else None
            if follow is not None:
                ready.append(follow)
            yield from collector.add(result.chunk, list(result.segments))

    def submit(batch: list[ChunkRequest]) -> Iterator[ItemResult]:
        while len(in_flight) >= max_in_flight:  # backpressure: wait for the oldest batch
            yield from drain(in_flight.popleft())
        timings.packed_windows += sum(isinstance(r.chunk, PackedChunk) for r in batch)
        in_flight.append(runner.submit([request.loaded() for request in batch]))

    def idle() -> int:  # replicas with no batch to decode
        return runner.concurrency - sum(not batch.done() for batch in in_flight)

    def pump() -> Iterator[ItemResult]:
        while ready:
            requests = ready[:]
            ready.clear()
            for batch in batcher.add(requests, idle()):
                yield from submit(batch)

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
        if sequential is not None and len(p.chunks) > 1:
            requests = sequential.first(p, language, task, prompt)
        else:
            requests = [runner.request(chunk, language, task, prompt, packable)
                        for chunk in p.chunks]
        for batch in batcher.add(requests, idle()):
            yield from submit(batch)
        while in_flight and in_flight[0].done():
            yield from drain(in_flight.popleft())
        yield from pump()
    while True:  # the input is done: flush, and the next chunks that the results free
        yield from pump()
        for batch in batcher.flush():
            yield from submit(batch)
        if in_flight:
            yield from drain(in_flight.popleft())
        elif not ready:
            break
    timings.continuations = runner.continuations.tried
    timings.continuations_kept = runner.continuations.kept


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


def check_language_options(runner: ModelRunner, config: TranscribeConfig) -> None:
    language = config.decode.language
    problem = _language_problem(runner, language or "en", config.decode.task)
    if problem:
        raise ConfigError(problem)
