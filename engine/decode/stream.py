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
    flow = _Flow(runner, config, timings or Timings())
    for p in with_languages(_timed_waits(prepared, flow.timings), runner, config):
        if isinstance(p, ItemError):
            yield p
            continue
        flow.timings.prepare_cpu_s += p.prepare_s
        if not p.chunks:
            yield finish(p, [])
            continue
        yield from flow.add(p)
    yield from flow.finish()


class _Flow:
    """The batches in flight between the batcher and the model's replica threads."""

    def __init__(self, runner: ModelRunner, config: TranscribeConfig, timings: Timings) -> None:
        self.runner, self.config, self.timings = runner, config, timings
        self.batcher = Batcher(config.batch)
        self.collector = Collector()
        self.in_flight: deque[Future[list[ChunkResult]]] = deque()
        self.max_in_flight = runner.concurrency + 1
        self.sequential = (PreviousText(runner.vocabulary, config.decode)
                           if config.decode.condition_on_previous_text else None)
        self.ready: list[ChunkRequest] = []  # files' next chunks, their previous chunk back

    def add(self, p: PreparedItem) -> Iterator[ItemResult]:
        """Queue a prepared item's first requests; yield the rows that finish meanwhile."""
        self.collector.expect(p)
        for batch in self.batcher.add(self._requests(p), self._idle()):
            yield from self._submit(batch)
        while self.in_flight and self.in_flight[0].done():
            yield from self._drain(self.in_flight.popleft())
        yield from self._pump()

    def finish(self) -> Iterator[ItemResult]:
        """The input is done: flush, and the next chunks that the results free."""
        while True:
            yield from self._pump()
            for batch in self.batcher.flush():
                yield from self._submit(batch)
            if self.in_flight:
                yield from self._drain(self.in_flight.popleft())
            elif not self.ready:
                break
        self.timings.continuations = self.runner.continuations.tried
        self.timings.continuations_kept = self.runner.continuations.kept

    def _requests(self, p: PreparedItem) -> list[ChunkRequest]:
        """A file's requests: every chunk, or the first of each stream when conditioned."""
        decode = self.config.decode
        task = p.item.task or decode.task
        prompt = p.item.prompt or decode.initial_prompt
        language = p.language or "en"
        if self.sequential is not None and len(p.chunks) > 1:
            return self.sequential.first(p, language, task, prompt)
        first = self.runner.vocabulary.initial_prompt(
            language, task, prompt, self.runner.decode.timestamps == "tokens")
        packable = self.config.batch.pack and len(p.chunks) == 1
        return [ChunkRequest(chunk, first, packable) for chunk in p.chunks]

    def _drain(self, batch: Future[list[ChunkResult]]) -> Iterator[ItemResult]:
        started = time.monotonic()
        results = batch.result()
        timings = self.timings
        timings.model_wait_s += time.monotonic() - started
        timings.batches += 1
        for result in results:
            timings.chunks += 1
            if result.route != "alone":
                timings.packed_chunks += 1
                timings.unpacked_chunks += result.route == "unpacked"
            follow = self.sequential.follow(result) if self.sequential is not None else None
            if follow is not None:
                self.ready.append(follow)
            yield from self.collector.add(result.chunk, list(result.segments))

    def _submit(self, batch: list[ChunkRequest]) -> Iterator[ItemResult]:
        while len(self.in_flight) >= self.max_in_flight:  # backpressure: the oldest batch
            yield from self._drain(self.in_flight.popleft())
        self.timings.packed_windows += sum(isinstance(r.chunk, PackedChunk) for r in batch)
        self.in_flight.append(self.runner.submit([request.loaded() for request in batch]))

    def _idle(self) -> int:  # replicas with no batch to decode
        return self.runner.concurrency - sum(not batch.done() for batch in self.in_flight)

    def _pump(self) -> Iterator[ItemResult]:
        while self.ready:
            requests = self.ready[:]
            self.ready.clear()
            for batch in self.batcher.add(requests, self._idle()):
                yield from self._submit(batch)


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
            problem = language_problem(runner.is_multilingual, language or "en", p.item.task)
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


def language_problem(multilingual: bool, language: str, task: str | None) -> str | None:
    """What is wrong with decoding `language` and `task` on a (multilingual) model, or None."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    if task is not None and task not in ("transcribe", "translate"):
        return f"task {task!r} is not valid; choose transcribe or translate"
    if not multilingual:
        if language != "en":
            return f"the model is English-only, so language {language!r} cannot be used"
        if task == "translate":
            return "the model is English-only and cannot translate"
    elif language not in _LANGUAGE_CODES:
        return f"language {language!r} is not a Whisper language code (e.g. en, de, fr, zh)"
    return None
