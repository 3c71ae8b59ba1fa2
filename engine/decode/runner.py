"""ModelRunner: decodes batches on the model's replica threads, composing adapter and policies.

`submit` hands a batch to a thread pool with one thread per replica (`inter_threads`); each
thread runs the batch's whole decode: generation, temperature fallback (`fallback`: a chunk whose
output looks too repetitive or too improbable is decoded again at the next temperature, as
faster-whisper's `transcribe` does), continuations where the model left speech out
(`continuation`), splitting packed windows (`packing`), word alignment, and segments
(`assemble`). The model itself is `model.WhisperModel`; the policies are functions over the typed
values it returns. CTranslate2 releases the GIL, so the replicas work at once while the caller's
thread only batches and writes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from engine.config import DecodeConfig, ModelConfig
from engine.decode import continuation as cont
from engine.decode.assemble import chunk_result
from engine.decode.batching import same_start_groups
from engine.decode.fallback import best_of, better, is_silent, needs_fallback
from engine.decode.model import ToAlign, WhisperModel
from engine.decode.packing import shares
from engine.decode.plan import ModelPlan, plan_model
from engine.decode.vocabulary import Vocabulary
from engine.decode.words import Word
from engine.types import Chunk, ChunkRequest, ChunkResult, Decoded, Route


class ModelRunner:
    """Loads a CTranslate2 Whisper model once and decodes batches of chunks with it."""

    def __init__(self, model: ModelConfig, decode: DecodeConfig,
                 plan: ModelPlan | None = None) -> None:
        self.whisper = WhisperModel(model, plan or plan_model(model))
        self.decode = decode.resolved()  # a run's config comes resolved (TranscribeConfig)
        self._threads = ThreadPoolExecutor(self.concurrency, thread_name_prefix="replica")
        self.continuations = ContinuationCounts()

    def close(self, wait: bool = True) -> None:
        """Wait for submitted batches, then stop the replica threads; `wait=False` (a stopped
        run) drops the batches not started and returns at once."""
        self._threads.shutdown(wait=wait, cancel_futures=not wait)

    @property
    def concurrency(self) -> int:
        """Batches decoded at once: the replicas of every device."""
        return self.whisper.replicas * self.whisper.devices

    @property
    def path(self) -> str:
        return self.whisper.path

    @property
    def device(self) -> str:
        return self.whisper.device

    @property
    def n_mels(self) -> int:
        return self.whisper.n_mels

    @property
    def is_multilingual(self) -> bool:
        return self.whisper.is_multilingual

    @property
    def features_on_device(self) -> bool:
        return self.whisper.features_on_device

    @property
    def vocabulary(self) -> Vocabulary:
        return self.whisper.vocabulary

    @property
    def model(self) -> Any:
        """The CTranslate2 model (converters' parity check generates with it directly)."""
        return self.whisper.model

    def tokenizer(self, language: str = "en", task: str = "transcribe") -> Any:
        """faster-whisper's Tokenizer for one language and task (cached)."""
        return self.vocabulary.tokenizer(language, task)

    def describe(self) -> dict[str, Any]:
        """The model as the run record (`.batchscribe/runs/`) keeps it."""
        return self.whisper.describe()

    def detect_languages(self, chunks: Sequence[Chunk]) -> list[tuple[str, float]]:
        """The most probable language of each chunk, with its probability."""
        return self.whisper.detect_languages(chunks)

    def submit(self, requests: Sequence[ChunkRequest]) -> Future[list[ChunkResult]]:
        """Start decoding a batch on a replica thread; the future holds one result per chunk
        (a packed window gives one per member)."""
        return self._threads.submit(self.decode_batch, list(requests))

    def decode_batch(self, requests: list[ChunkRequest]) -> list[ChunkResult]:
        """Decode a batch to segments: fallback, continuations, packed windows split."""
        results: list[ChunkResult] = []
        plain: list[tuple[list[Decoded], Route]] = []  # each plain chunk's decodes
        alone: list[ChunkRequest] = []  # members of packed windows, to decode alone
        for run in self._continued(self._decoded(requests)):
            window = run[0].request
            if isinstance(window.chunk, Chunk):
                plain.append((run, "alone"))
                continue
            tokenizer = self.tokenizer(window.language, window.task)
            for member, share in zip(window.chunk.members,
                                     shares(run, self.decode, tokenizer, self._align_one),
                                     strict=True):
                if share is None:
                    alone.append(ChunkRequest(member, window.prompt))
                else:
                    results.append(ChunkResult(member, tuple(share), "packed"))
        if alone:
            plain += [(run, "unpacked") for run in self._continued(self._decoded(alone))]
        return results + self._plain_results(plain)

    def _plain_results(self, plain: list[tuple[list[Decoded], Route]]) -> list[ChunkResult]:
        """Each plain chunk's result; with word timings, aligned for the whole batch at once
        (those not aligned yet), when segments are cut by them or words asked for."""
        config = self.decode
        if config.timestamps == "aligned" or config.word_timestamps:
            flat = self._aligned([d for run, _ in plain for d in run],
                                 lambda d: d.words is None and not is_silent(d, config))
            it = iter(flat)
            plain = [([next(it) for _ in run], route) for run, route in plain]
        return [chunk_result(run, route, config, self.tokenizer) for run, route in plain]

    def _align_one(self, decoded: Decoded) -> list[Word]:
        """Word timings of one decode's text, in its view's time (packed windows' split)."""
        return self.whisper.align([self._to_align(decoded)])[0]

    def _to_align(self, d: Decoded) -> ToAlign:
        eot = self.tokenizer(d.request.language, d.request.task).eot
        return ToAlign(d.encoded, d.request.language, d.request.task,
                       tuple(t for t in d.tokens if t < eot), d.request.chunk.duration_s)

    def _aligned(self, decodes: list[Decoded],
                 wanted: Callable[[Decoded], bool]) -> list[Decoded]:
        """`decodes`, those `wanted` with their words aligned (one batch of alignments)."""
        todo = [i for i, d in enumerate(decodes) if wanted(d)]
        words = self.whisper.align([self._to_align(decodes[i]) for i in todo])
        out = list(decodes)
        for i, found in zip(todo, words, strict=True):
            out[i] = replace(out[i], words=tuple(found))
        return out

    def _decoded(self, requests: Sequence[ChunkRequest]) -> list[Decoded]:
        """Decode a batch synchronously, with temperature fallback."""
        config = self.decode
        temperature = config.temperatures[0]
        encoded = self.whisper.encode([r.chunk for r in requests])
        generated = self.whisper.generate([r.prompt for r in requests], encoded, temperature,
                                          config)
        decoded = [best_of(r, g, temperature, e, config, self.vocabulary)
                   for r, g, e in zip(requests, generated, encoded, strict=True)]
        failed = [i for i, d in enumerate(decoded) if needs_fallback(d, config)]
        if failed and len(config.temperatures) > 1:
            for i, d in zip(failed, self._redecoded([decoded[i] for i in failed]), strict=True):
                decoded[i] = d
        return decoded

    def _redecoded(self, failed: list[Decoded]) -> list[Decoded]:
        """Walk failed chunks up the temperature schedule; keep each chunk's best attempt."""
        config = self.decode
        best = list(failed)
        todo = list(enumerate(failed))  # (position in `failed`, last attempt)
        for temperature in config.temperatures[1:]:
            if not todo:
                break
            requests = [d.request for _, d in todo]
            encoded = [d.encoded for _, d in todo]
            generated = self.whisper.generate([r.prompt for r in requests], encoded,
                                              temperature, config)
            attempts = [best_of(r, g, temperature, e, config, self.vocabulary)
                        for r, g, e in zip(requests, generated, encoded, strict=True)]
            for (i, _), attempt in zip(todo, attempts, strict=True):
                best[i] = better(best[i], attempt, config)
            todo = [(i, a) for (i, _), a in zip(todo, attempts, strict=True)
                    if needs_fallback(a, config)]
        return best

    def _continued(self, decoded: list[Decoded]) -> list[list[Decoded]]:
        """Each chunk's decodes: the first, then continuations from where the decoder left speech
        out (`continuation.left_out`), each decode before them cut to its words before that
        point. A continuation that hears no more of the voiced speech than the cut-off words did
        is dropped and the decode kept whole."""
        config = self.decode
        tokenizer = self.tokenizer()
        runs = [[d] for d in decoded]
        active = runs
        for _ in range(cont.MAX_CONTINUATIONS):
            lasts = self._aligned([run[-1] for run in active],
                                  lambda d: cont.wants_words(d, config))
            todo: list[tuple[list[Decoded], float, Decoded]] = []  # run, from where, uncut
            for run, last in zip(active, lasts, strict=True):
                run[-1] = last
                found = cont.left_out(last, config, tokenizer)
                if found is not None:
                    todo.append((run, found[0], last))
                    run[-1] = found[1]
            if not todo:
                break
            self.continuations.add(tried=len(todo))
            tails = self._aligned(
                self._decode_grouped([cont.continuation(run[-1], from_s, tokenizer.eot)
                                      for run, from_s, _ in todo]),
                lambda d: cont.wants_words(d, config))
            active = []
            for (run, from_s, uncut), tail in zip(todo, tails, strict=True):
                cut = run[-1]
                if tail.words is not None and cut.words is not None:
                    tail = cont.without_repeated_start(tail, cut.words, tokenizer.eot)
                if cont.hears_more(uncut, cut, from_s, tail, config):
                    run.append(tail)
                    active.append(run)
                    self.continuations.add(kept=1)
                else:
                    run[-1] = uncut
        return runs

    def _decode_grouped(self, requests: list[ChunkRequest]) -> list[Decoded]:
        """`_decoded` on requests of any prompt lengths, one model call per group that can
        share one (`batching.same_start_groups`); results in the order of `requests`."""
        done: list[Decoded | None] = [None] * len(requests)
        for group in same_start_groups(requests):
            decoded = self._decoded([request for _, request in group])
            for (i, _), d in zip(group, decoded, strict=True):
                done[i] = d
        return [d for d in done if d is not None]


class ContinuationCounts:
    """How often decodes ran again from where speech was left out, and were kept (replica
    threads add at once)."""

    def __init__(self) -> None:
        self.tried = self.kept = 0
        self._lock = threading.Lock()

    def add(self, tried: int = 0, kept: int = 0) -> None:
        with self._lock:
            self.tried += tried
            self.kept += kept
