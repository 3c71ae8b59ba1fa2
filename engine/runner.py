"""ModelRunner: owns the one CTranslate2 Whisper model of a process and drives it.

Batches are submitted asynchronously (`generate(..., asynchronous=True)`), so several replicas
(`inter_threads`) decode at once while the caller prepares the next batch. A chunk whose output
looks wrong (too repetitive, too improbable) is decoded again at the next temperature of the
fallback schedule, as faster-whisper's `transcribe` does.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.config import DecodeConfig, ModelConfig
from engine.errors import ModelLoadError
from engine.models import resolve_model
from engine.types import Chunk, ChunkRequest

MAX_LENGTH = 448
TIME_PRECISION_S = 0.02
MIN_TAIL_S = 1.0  # speech left after the model's last timestamp that is worth decoding again
MAX_CONTINUATIONS = 3


@dataclass(frozen=True, slots=True)
class Decoded:
    """The model's raw answer for one chunk."""

    request: ChunkRequest
    tokens: tuple[int, ...]
    avg_logprob: float
    no_speech_prob: float
    temperature: float
    compression_ratio: float


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def _effective_device(requested: str) -> str:
    if requested != "auto":
        return requested
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


class ModelRunner:
    """Loads a CTranslate2 Whisper model once and decodes batches of chunks with it."""

    def __init__(self, model: ModelConfig, decode: DecodeConfig) -> None:
        import ctranslate2
        import tokenizers

        self.path = resolve_model(model.path)
        self.device = _effective_device(model.device)
        self.compute_type = model.compute_type
        if self.compute_type == "auto":
            self.compute_type = "int8" if self.device == "cpu" else "float16"
        cores = os.cpu_count() or 2
        self.replicas = model.replicas or (min(2, cores) if self.device == "cpu" else 8)
        threads = model.cpu_threads or max(1, cores // self.replicas)
        try:
            self.model = ctranslate2.models.Whisper(
                self.path, device=self.device, device_index=list(model.device_index),
                compute_type=self.compute_type, inter_threads=self.replicas,
                intra_threads=threads,
            )
            self.hf_tokenizer = tokenizers.Tokenizer.from_file(
                os.path.join(self.path, "tokenizer.json"))
        except (RuntimeError, ValueError, OSError, Exception) as e:
            raise ModelLoadError(
                f"cannot load the Whisper model in {self.path} on {self.device} "
                f"({self.compute_type}): {str(e).splitlines()[0]}"
            ) from e
        self.decode = decode
        self._tokenizers: dict[tuple[str, str], Any] = {}
        self._suppress = self._suppressed_tokens()

    def describe(self) -> dict[str, Any]:
        """The model as run.json records it."""
        from engine.models import model_fingerprint

        return {"path": self.path, "sha256_16": model_fingerprint(self.path),
                "device": self.device, "compute_type": self.compute_type,
                "replicas": self.replicas, "n_mels": self.n_mels,
                "multilingual": self.is_multilingual}

    @property
    def n_mels(self) -> int:
        return int(self.model.n_mels)

    @property
    def is_multilingual(self) -> bool:
        return bool(self.model.is_multilingual)

    def tokenizer(self, language: str = "en", task: str = "transcribe") -> Any:
        """faster-whisper's Tokenizer for one language and task (cached)."""
        from faster_whisper.tokenizer import Tokenizer

        key = (language, task)
        if key not in self._tokenizers:
            self._tokenizers[key] = Tokenizer(
                self.hf_tokenizer, self.is_multilingual, task=task, language=language)
        return self._tokenizers[key]

    def _suppressed_tokens(self) -> list[int]:
        from faster_whisper.transcribe import get_suppressed_tokens

        return list(get_suppressed_tokens(self.tokenizer(), [-1]))

    def request(self, chunk: Chunk, language: str, task: str, prompt: str | None) -> ChunkRequest:
        """A chunk with its decoding prompt (previous-text prompt, language, task)."""
        if not self.is_multilingual:
            language = "en"
        tokenizer = self.tokenizer(language, task)
        tokens: list[int] = []
        if prompt:
            tokens = [tokenizer.sot_prev, *tokenizer.encode(" " + prompt.strip())]
            tokens = tokens[: MAX_LENGTH // 2]
        tokens += tokenizer.sot_sequence
        if self.decode.without_timestamps:
            tokens.append(tokenizer.no_timestamps)
        return ChunkRequest(chunk, language, task, tuple(tokens))

    def detect_languages(self, chunks: Sequence[Chunk]) -> list[tuple[str, float]]:
        """The most probable language of each chunk, with its probability."""
        import ctranslate2

        features = ctranslate2.StorageView.from_array(np.stack([c.features for c in chunks]))
        results = self.model.detect_language(features)
        return [(ranked[0][0].strip("<|>"), float(ranked[0][1])) for ranked in results]

    def submit(self, requests: Sequence[ChunkRequest]) -> PendingBatch:
        """Start decoding a batch; results come from `PendingBatch.wait()`."""
        handles = self._generate(requests, self.decode.temperatures[0], asynchronous=True)
        return PendingBatch(self, list(requests), handles)

    def _generate(self, requests: Sequence[ChunkRequest], temperature: float,
                  asynchronous: bool) -> list[Any]:
        import ctranslate2

        features = ctranslate2.StorageView.from_array(
            np.stack([r.chunk.features for r in requests]))
        if temperature > 0:
            search: dict[str, Any] = dict(beam_size=1, num_hypotheses=self.decode.best_of,
                                          sampling_topk=0, sampling_temperature=temperature)
        else:
            search = dict(beam_size=self.decode.beam_size, patience=self.decode.patience)
        return list(self.model.generate(
            features, [list(r.prompt_tokens) for r in requests],
            asynchronous=asynchronous, length_penalty=self.decode.length_penalty,
            max_length=MAX_LENGTH, return_scores=True, return_no_speech_prob=True,
            suppress_blank=self.decode.suppress_blank, suppress_tokens=self._suppress,
            max_initial_timestamp_index=int(round(
                self.decode.max_initial_timestamp_s / TIME_PRECISION_S)),
            **search,
        ))

    def to_decoded(self, request: ChunkRequest, result: Any, temperature: float) -> Decoded:
        """Pick the best hypothesis and compute faster-whisper's quality measures."""
        best = int(np.argmax(result.scores)) if len(result.scores) > 1 else 0
        tokens = result.sequences_ids[best]
        cum_logprob = result.scores[best] * (len(tokens) ** self.decode.length_penalty)
        text = self.tokenizer(request.language, request.task).decode(tokens).strip()
        return Decoded(request, tuple(tokens), cum_logprob / (len(tokens) + 1),
                       float(result.no_speech_prob), temperature, compression_ratio(text))

    def needs_fallback(self, d: Decoded) -> bool:
        """faster-whisper's rule: repetitive or improbable text, unless it is silence."""
        config = self.decode
        too_repetitive = (config.compression_ratio_threshold is not None
                          and d.compression_ratio > config.compression_ratio_threshold)
        improbable = (config.log_prob_threshold is not None
                      and d.avg_logprob < config.log_prob_threshold)
        silent = (config.no_speech_threshold is not None and improbable
                  and d.no_speech_prob > config.no_speech_threshold)
        return (too_repetitive or improbable) and not silent

    def unfinished_tail_s(self, d: Decoded) -> float | None:
        """Where to decode again when the model stopped before the chunk's end.

        Like Whisper's seek: a sequence that ends on a closed segment (two timestamps) with more
        than MIN_TAIL_S of speech after it has left that speech out.
        """
        if self.decode.without_timestamps or len(d.tokens) < 2:
            return None
        begin = self.tokenizer().timestamp_begin
        if not (d.tokens[-1] >= begin and d.tokens[-2] >= begin):
            return None
        last_s = float((d.tokens[-1] - begin) * TIME_PRECISION_S)
        if last_s <= 0 or d.request.chunk.duration_s - last_s < MIN_TAIL_S:
            return None
        return last_s

    def decode_now(self, requests: list[ChunkRequest]) -> list[Decoded]:
        """Decode a batch synchronously, with temperature fallback."""
        temperature = self.decode.temperatures[0]
        results = self._generate(requests, temperature, asynchronous=False)
        return self.with_fallback(
            [self.to_decoded(r, res, temperature)
             for r, res in zip(requests, results, strict=True)])

    def with_fallback(self, decoded: list[Decoded]) -> list[Decoded]:
        failed = [d for d in decoded if self.needs_fallback(d)]
        if failed and len(self.decode.temperatures) > 1:
            retried = {id(d.request): d for d in self.redecode(failed)}
            decoded = [retried.get(id(d.request), d) for d in decoded]
        return decoded

    def continue_tails(self, decoded: list[Decoded]) -> list[list[Decoded]]:
        """Each chunk's decodes: the first, then continuations from where the model stopped."""
        runs = [[d] for d in decoded]
        for _ in range(MAX_CONTINUATIONS):
            todo = []
            for run in runs:
                from_s = self.unfinished_tail_s(run[-1])
                if from_s is not None:
                    r = run[-1].request
                    todo.append((run, ChunkRequest(r.chunk.tail(from_s), r.language, r.task,
                                                   r.prompt_tokens)))
            if not todo:
                break
            for (run, _), d in zip(todo, self.decode_now([req for _, req in todo]), strict=True):
                run.append(d)
        return runs

    def redecode(self, failed: list[Decoded]) -> list[Decoded]:
        """Walk failed chunks up the temperature schedule; keep each chunk's best attempt."""
        best = {id(d.request): d for d in failed}
        todo = list(failed)
        for temperature in self.decode.temperatures[1:]:
            if not todo:
                break
            requests = [d.request for d in todo]
            results = self._generate(requests, temperature, asynchronous=False)
            todo = []
            for request, result in zip(requests, results, strict=True):
                attempt = self.to_decoded(request, result, temperature)
                best[id(request)] = _better(best[id(request)], attempt, self.decode)
                if self.needs_fallback(attempt):
                    todo.append(attempt)
        return [best[id(d.request)] for d in failed]


def _better(old: Decoded, new: Decoded, config: DecodeConfig) -> Decoded:
    """Prefer an attempt under the compression threshold, then the higher log-probability."""
    limit = config.compression_ratio_threshold

    def rank(d: Decoded) -> tuple[bool, float]:
        return (limit is None or d.compression_ratio <= limit, d.avg_logprob)

    return new if rank(new) > rank(old) else old


class PendingBatch:
    """A batch being decoded; `wait()` returns the decodes of each request, in order."""

    def __init__(self, runner: ModelRunner, requests: list[ChunkRequest], handles: list[Any]):
        self._runner = runner
        self.requests = requests
        self._handles = handles

    def done(self) -> bool:
        return all(h.done() for h in self._handles)

    def wait(self) -> list[list[Decoded]]:
        """Per request: its decode, plus continuations where the model stopped early."""
        temperature = self._runner.decode.temperatures[0]
        decoded = [
            self._runner.to_decoded(r, h.result(), temperature)
            for r, h in zip(self.requests, self._handles, strict=True)
        ]
        return self._runner.continue_tails(self._runner.with_fallback(decoded))
