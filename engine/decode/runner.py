"""ModelRunner: owns the one CTranslate2 Whisper model of a process and drives it.

`submit` hands a batch to a thread pool with one thread per replica (`inter_threads`); each
thread runs the batch's whole decode: generation, temperature fallback (a chunk whose output
looks too repetitive or too improbable is decoded again at the next temperature, as
faster-whisper's `transcribe` does), continuations where the model stopped early, splitting packed
windows, word alignment, and segments. CTranslate2 releases the GIL, so the replicas work at once
while the caller's thread only batches and writes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from engine.config import DecodeConfig, ModelConfig
from engine.decode.assemble import TIME_PRECISION_S, compression_ratio, is_silence, to_segments
from engine.decode.batching import same_start_groups
from engine.decode.continuation import (
    MIN_GAIN_S,
    MIN_GAIN_WORDS,
    MIN_LEFT_OUT_S,
    cut_before,
    left_out_s,
    uncovered_s,
    unspoken_tail_s,
    without_repeated_start,
)
from engine.decode.models import model_fingerprint
from engine.decode.packing import share_is_suspect, split_window
from engine.decode.plan import ModelPlan, plan_model
from engine.decode.words import Word, from_alignment
from engine.errors import ModelLoadError
from engine.types import (
    FRAMES_PER_S,
    Chunk,
    ChunkRequest,
    ChunkResult,
    Decoded,
    PackedChunk,
    Route,
    Segment,
)

MAX_LENGTH = 448
MIN_TAIL_S = 1.0  # speech left after the model's last timestamp that is worth decoding again
MAX_CONTINUATIONS = 3


class ModelRunner:
    """Loads a CTranslate2 Whisper model once and decodes batches of chunks with it."""

    def __init__(self, model: ModelConfig, decode: DecodeConfig,
                 plan: ModelPlan | None = None) -> None:
        plan = plan or plan_model(model)
        self.path, self.device, self.compute_type = plan.path, plan.device, plan.compute_type
        self.replicas = plan.replicas
        # torch's import and load, and the model's digest for the run record (1-3 s for a large
        # model.bin), beside CTranslate2's load
        with ThreadPoolExecutor(2) as loader:
            digest = loader.submit(model_fingerprint, self.path)
            torch_encoder = loader.submit(_torch_encoder, plan, model.device_index)
            self._load(model, plan.threads)
            self._torch = torch_encoder.result()
            self.fingerprint = digest.result()
        self.features_on_device = plan.features_on_device
        self.decode = decode.resolved()  # a run's config comes resolved (TranscribeConfig)
        self._tokenizers: dict[tuple[str, str], Any] = {}
        self._suppress = self._suppressed_tokens()
        self.devices = len(model.device_index) if self.device == "cuda" else 1
        self._threads = ThreadPoolExecutor(self.concurrency, thread_name_prefix="replica")
        self.continuations = ContinuationCounts()

    def _load(self, model: ModelConfig, threads: int) -> None:
        import ctranslate2
        import tokenizers

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

    def close(self, wait: bool = True) -> None:
        """Wait for submitted batches, then stop the replica threads; `wait=False` (a stopped
        run) drops the batches not started and returns at once."""
        self._threads.shutdown(wait=wait, cancel_futures=not wait)

    @property
    def concurrency(self) -> int:
        """Batches decoded at once: the replicas of every device."""
        return self.replicas * self.devices

    def describe(self) -> dict[str, Any]:
        """The model as the run record (`.batchscribe/runs/`) keeps it."""
        return {"path": self.path, "sha256_16": self.fingerprint,
                "device": self.device, "compute_type": self.compute_type,
                "replicas_per_device": self.replicas, "devices": self.devices,
                "n_mels": self.n_mels,
                "encoder": "ctranslate2" if self._torch is None else "torch",
                "features": "device" if self.features_on_device else "workers",
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

    def request(self, chunk: Chunk, language: str, task: str, prompt: str | None,
                packable: bool = False, previous: tuple[int, ...] = (),
                timestamp_tokens: bool | None = None) -> ChunkRequest:
        """A chunk with its decoding prompt (previous-text prompt, language, task).

        `previous`: the file's text so far as tokens (`conditioning`), in place of `prompt`; the
        batcher may trim its oldest tokens so that prompts in one batch have one length.
        `timestamp_tokens`: decode with them (default: in `tokens` mode only)."""
        if not self.is_multilingual:
            language = "en"
        tokenizer = self.tokenizer(language, task)
        tokens: list[int] = []
        if previous:
            tokens = [tokenizer.sot_prev, *previous[-(MAX_LENGTH // 2 - 1):]]
        elif prompt:
            tokens = [tokenizer.sot_prev, *tokenizer.encode(" " + prompt.strip())]
            tokens = tokens[: MAX_LENGTH // 2]
        tokens += tokenizer.sot_sequence
        if timestamp_tokens is None:
            timestamp_tokens = self.decode.timestamps == "tokens"
        if not timestamp_tokens:
            tokens.append(tokenizer.no_timestamps)
        trimmable = min(len(previous), MAX_LENGTH // 2 - 1)
        return ChunkRequest(chunk, language, task, tuple(tokens), packable, trimmable)

    def detect_languages(self, chunks: Sequence[Chunk]) -> list[tuple[str, float]]:
        """The most probable language of each chunk, with its probability."""
        import ctranslate2

        if self._torch is not None:
            view = self._view(self._torch.encode_windows([c.features for c in chunks]))
        else:
            view = ctranslate2.StorageView.from_array(_host_features(chunks))
        results = self.model.detect_language(view)
        return [(ranked[0][0].strip("<|>"), float(ranked[0][1])) for ranked in results]

    def submit(self, requests: Sequence[ChunkRequest]) -> Future[list[ChunkResult]]:
        """Start decoding a batch on a replica thread; the future holds one result per chunk
        (a packed window gives one per member)."""
        return self._threads.submit(self.decode_batch, list(requests))

    def decode_batch(self, requests: list[ChunkRequest]) -> list[ChunkResult]:
        """Decode a batch to segments: fallback, continuations, packed windows split."""
        results: list[ChunkResult] = []
        plain: list[tuple[list[Decoded], Route]] = []  # each plain chunk's decodes
        alone: list[tuple[Chunk, ChunkRequest]] = []  # members of packed windows, to redo
        words: dict[int, list[Word]] = {}  # word timings by id(Decoded), aligned once
        for run in self.continue_tails(self.decode_now(requests), words):
            window = run[0].request.chunk
            if isinstance(window, Chunk):
                plain.append((run, "alone"))
                continue
            for member, share in zip(window.members, self._shares(run), strict=True):
                if share is None:
                    alone.append((member, ChunkRequest(member, *_prompt_of(run[0].request))))
                else:
                    results.append(ChunkResult(member, tuple(share), "packed"))
        if alone:
            runs = self.continue_tails(self.decode_now([request for _, request in alone]), words)
            plain += [(run, "unpacked") for run in runs]
        return results + self._plain_results(plain, words)

    def _plain_results(self, plain: list[tuple[list[Decoded], Route]],
                       words: dict[int, list[Word]]) -> list[ChunkResult]:
        """Each plain chunk's segments (none from decodes judged silent); with word timings,
        aligned for the whole batch at once (those not aligned yet), when segments are cut by
        them or words asked for."""
        config = self.decode
        spoken = [d for run, _ in plain for d in run if not self._is_silence(d)]
        if config.timestamps == "aligned" or config.word_timestamps:
            missing = [d for d in spoken if id(d) not in words]
            words.update(zip(map(id, missing), self.align_batch(missing), strict=True))
        results = []
        for run, route in plain:
            segments = [s for d in run if not self._is_silence(d) for s in to_segments(
                d, self.tokenizer(d.request.language, d.request.task), words.get(id(d)),
                cut_by_words=config.timestamps == "aligned", keep_words=config.word_timestamps)]
            chunk = run[0].request.chunk
            assert isinstance(chunk, Chunk)
            results.append(ChunkResult(chunk, tuple(segments), route,
                                       max(d.temperature for d in run)))
        return results

    def _is_silence(self, decoded: Decoded) -> bool:
        return is_silence(decoded, self.decode.no_speech_threshold, self.decode.log_prob_threshold)

    def _shares(self, run: list[Decoded]) -> list[list[Segment] | None]:
        """Each member's segments from a packed window, or None where the member must be
        decoded alone: the whole window when its decode needed fallback or looks silent."""
        window = run[0].request.chunk
        assert isinstance(window, PackedChunk)
        config = self.decode
        if any(d.temperature > config.temperatures[0] or self._is_silence(d) for d in run):
            return [None] * len(window.members)
        request = run[0].request
        shares = split_window(run, self.tokenizer(request.language, request.task),
                              self.align_words)
        return [None if share_is_suspect(share, member.duration_s,
                                         config.compression_ratio_threshold) else share
                for member, share in zip(window.members, shares, strict=True)]

    def align_words(self, decoded: Decoded) -> list[Word]:
        """Word timings of one decode's text, in its view's time."""
        return self.align_batch([decoded])[0]

    def align_batch(self, decodes: list[Decoded]) -> list[list[Word]]:
        """Word timings of each decode's text (cross-attention alignment on the encoder output
        kept with it), one `align` call per language and task."""
        out: list[list[Word]] = [[] for _ in decodes]
        groups: dict[tuple[str, str], list[tuple[int, list[int]]]] = {}
        for i, d in enumerate(decodes):
            eot = self.tokenizer(d.request.language, d.request.task).eot
            text = [t for t in d.tokens if t < eot]
            if text:
                groups.setdefault((d.request.language, d.request.task), []).append((i, text))
        for (language, task), members in groups.items():
            tokenizer = self.tokenizer(language, task)
            chosen = [decodes[i] for i, _ in members]
            features = self._view([d.encoded for d in chosen])
            frames = [int(round(d.request.chunk.duration_s * FRAMES_PER_S)) for d in chosen]
            results = self.model.align(features, tokenizer.sot_sequence,
                                       [text for _, text in members], frames)
            for (i, text), d, result in zip(members, chosen, results, strict=True):
                out[i] = from_alignment(tokenizer, text, result.alignments,
                                        result.text_token_probs, d.request.chunk.duration_s)
        return out

    def _encode(self, requests: Sequence[ChunkRequest]) -> Any:
        """The encoder's output for a batch [batch, frames, width]: on the host, or on the GPU
        with the torch encoder."""
        import ctranslate2

        if self._torch is not None:
            return self._torch.encode_windows([r.chunk.features for r in requests])
        features = ctranslate2.StorageView.from_array(
            _host_features([r.chunk for r in requests]))
        encoded = self.model.encode(features, to_cpu=True)
        if encoded.dtype == ctranslate2.DataType.bfloat16:  # numpy has no bfloat16
            encoded = encoded.to(ctranslate2.DataType.float32)
        return np.asarray(encoded)

    def _view(self, encoded: Any) -> Any:
        """A StorageView over encoder outputs (a batch, or a list of rows), where they are."""
        import ctranslate2

        if self._torch is not None:
            from engine.decode.torch_encoder import storage_view

            return storage_view(encoded)
        rows = encoded if isinstance(encoded, np.ndarray) else np.stack(encoded)
        return ctranslate2.StorageView.from_array(np.ascontiguousarray(rows))

    def _generate(self, requests: Sequence[ChunkRequest], encoded: Any,
                  temperature: float) -> list[Any]:
        features = self._view(encoded)
        if temperature > 0:
            search: dict[str, Any] = dict(beam_size=1, num_hypotheses=self.decode.best_of,
                                          sampling_topk=0, sampling_temperature=temperature)
        else:
            search = dict(beam_size=self.decode.beam_size, patience=self.decode.patience)
        return list(self.model.generate(
            features, [list(r.prompt_tokens) for r in requests],
            length_penalty=self.decode.length_penalty,
            max_length=MAX_LENGTH, return_scores=True, return_no_speech_prob=True,
            suppress_blank=self.decode.suppress_blank, suppress_tokens=self._suppress,
            max_initial_timestamp_index=int(round(
                self.decode.max_initial_timestamp_s / TIME_PRECISION_S)),
            **search,
        ))

    def to_decoded(self, request: ChunkRequest, result: Any, temperature: float,
                   encoded: Any) -> Decoded:
        """Pick the best hypothesis and compute faster-whisper's quality measures."""
        best = int(np.argmax(result.scores)) if len(result.scores) > 1 else 0
        tokens = result.sequences_ids[best]
        cum_logprob = result.scores[best] * (len(tokens) ** self.decode.length_penalty)
        text = self.tokenizer(request.language, request.task).decode(tokens).strip()
        return Decoded(request, tuple(tokens), cum_logprob / (len(tokens) + 1),
                       float(result.no_speech_prob), temperature, compression_ratio(text),
                       encoded)

    def needs_fallback(self, d: Decoded) -> bool:
        """faster-whisper's rule: repetitive or improbable text, unless it is silence."""
        config = self.decode
        too_repetitive = _too_repetitive(d, config)
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
        if self.decode.timestamps != "tokens" or len(d.tokens) < 2:
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
        encoded = self._encode(requests)
        results = self._generate(requests, encoded, temperature)
        return self.with_fallback(
            [self.to_decoded(r, res, temperature, e)
             for r, res, e in zip(requests, results, encoded, strict=True)])

    def with_fallback(self, decoded: list[Decoded]) -> list[Decoded]:
        failed = [d for d in decoded if self.needs_fallback(d)]
        if failed and len(self.decode.temperatures) > 1:
            retried = {id(d.request): d for d in self.redecode(failed)}
            decoded = [retried.get(id(d.request), d) for d in decoded]
        return decoded

    def continue_tails(self, decoded: list[Decoded],
                       words: dict[int, list[Word]]) -> list[list[Decoded]]:
        """Each chunk's decodes: the first, then continuations from where the decoder left speech
        out (`_left_out`), each decode before them cut to its words before that point. A
        continuation that hears no more of the voiced speech than the cut-off words did is
        dropped and the decode kept whole. The words of every spoken plain decode are kept in
        `words` once aligned."""
        runs = [[d] for d in decoded]
        active = runs
        for _ in range(MAX_CONTINUATIONS):
            todo: list[tuple[list[Decoded], float, Decoded]] = []  # run, from where, uncut
            for run, found in zip(active, self._left_out([run[-1] for run in active], words),
                                  strict=True):
                if found is not None:
                    todo.append((run, found[0], run[-1]))
                    run[-1] = found[1]
            if not todo:
                break
            self.continuations.add(tried=len(todo))
            tails = self._decode_grouped([self._continuation(run[-1], from_s)
                                          for run, from_s, _ in todo])
            self._align_missing(tails, words)
            active = []
            for (run, from_s, uncut), tail in zip(todo, tails, strict=True):
                cut = run[-1]
                if id(tail) in words and id(cut) in words:
                    tail, words[id(tail)] = without_repeated_start(
                        tail, words.pop(id(tail)), words[id(cut)],
                        self.tokenizer(tail.request.language, tail.request.task).eot)
                if self._hears_more(uncut, cut, from_s, tail, words):
                    if cut is not uncut:
                        words.pop(id(uncut), None)
                    run.append(tail)
                    active.append(run)
                    self.continuations.add(kept=1)
                else:
                    if cut is not uncut:
                        words.pop(id(cut), None)
                    words.pop(id(tail), None)
                    run[-1] = uncut
        return runs

    def _continuation(self, said: Decoded, from_s: float) -> ChunkRequest:
        """The rest of `said`'s chunk after `from_s`, decoded with timestamp tokens (a decoder
        made to place each segment in time skips less: seen where text-only decodes of one
        window dropped 15 s of an atypical voice twice), prompted with the text before it (the
        chunk's own prompt, then what `said` kept) as Whisper's sequential loop prompts its next
        window.

        A packed window goes on from the start of the member whose speech was left out
        (`PackedChunk.tail`) with the window's own prompt: its members are whole files, so the
        text before that point is other files' and never prompts it; `split_window` gives the
        members from there on the continuation's text, and one whose share still looks wrong
        is decoded alone."""
        request = said.request
        if isinstance(request.chunk, PackedChunk):
            return ChunkRequest(request.chunk.tail(from_s), *_prompt_of(request))
        tokenizer = self.tokenizer(request.language, request.task)
        before = request.prompt_tokens[1:request.prompt_tokens.index(tokenizer.sot)]
        previous = before + tuple(t for t in said.tokens if t < tokenizer.eot)
        return self.request(request.chunk.tail(from_s), request.language, request.task, None,
                            previous=previous, timestamp_tokens=True)

    def _decode_grouped(self, requests: list[ChunkRequest]) -> list[Decoded]:
        """`decode_now` on requests of any prompt lengths, one model call per group that can
        share one (`batching.same_start_groups`); results in the order of `requests`."""
        done: dict[int, Decoded] = {}
        for group in same_start_groups(requests):
            for d in self.decode_now(group):
                done[id(d.request.chunk)] = d
        return [done[id(r.chunk)] for r in requests]

    def _hears_more(self, uncut: Decoded, cut: Decoded, from_s: float, tail: Decoded,
                    words: dict[int, list[Word]]) -> bool:
        """Whether a continuation from `from_s` covers at least MIN_GAIN_S more of the chunk's
        voiced speech than the uncut decode's words did, with at least MIN_GAIN_WORDS more words
        than it replaces (always, when VAD is off). Never when its best attempt is still too
        repetitive: a continuation of a second of noise can loop ("Yeah." 40 times, seen at a
        conditioned file's end), and the uncut decode is there to keep instead."""
        if _too_repetitive(tail, self.decode):
            return False
        chunk, tail_chunk = uncut.request.chunk, tail.request.chunk
        if not isinstance(chunk, Chunk) or not isinstance(tail_chunk, Chunk):
            return True
        if chunk.voiced is None or tail_chunk.voiced is None:
            return True
        if id(tail) not in words or id(uncut) not in words or id(cut) not in words:
            return False
        replaced = len(words[id(uncut)]) - len(words[id(cut)])
        return (len(words[id(tail)]) >= replaced + MIN_GAIN_WORDS
                and uncovered_s(words[id(tail)], tail_chunk.voiced)
                <= uncovered_s(words[id(uncut)], chunk.voiced, from_s) - MIN_GAIN_S)

    def _align_missing(self, decodes: list[Decoded], words: dict[int, list[Word]]) -> None:
        """Align the spoken plain decodes that `words` lacks and where words are used: chunks with
        voiced speech known, and every chunk in aligned mode."""
        aligned = self.decode.timestamps == "aligned"
        missing = [d for d in decodes if isinstance(d.request.chunk, Chunk)
                   and id(d) not in words and not self._is_silence(d)
                   and (d.request.chunk.voiced is not None or aligned)]
        words.update(zip(map(id, missing), self.align_batch(missing), strict=True))

    def _left_out(self, decodes: list[Decoded],
                  words: dict[int, list[Word]]) -> list[tuple[float, Decoded] | None]:
        """For each decode that left speech out: where to decode its chunk again from, and the
        decode cut before that point. With VAD, that is voiced speech no aligned word covers
        (`continuation.left_out_s`); without, a tail after the last word (aligned) or after the
        last closed segment (tokens)."""
        config = self.decode
        self._align_missing(decodes, words)
        out: list[tuple[float, Decoded] | None] = []
        for d in decodes:
            chunk = d.request.chunk
            from_s = None
            if isinstance(chunk, Chunk) and id(d) in words:
                from_s = (unspoken_tail_s(words[id(d)], chunk.duration_s, MIN_TAIL_S)
                          if chunk.voiced is None else
                          left_out_s(words[id(d)], chunk.voiced, MIN_LEFT_OUT_S, MIN_TAIL_S))
            elif config.timestamps == "tokens" and not self._is_silence(d):
                from_s = self.unfinished_tail_s(d)
            if from_s is None:
                out.append(None)
                continue
            if id(d) not in words:
                out.append((from_s, d))
                continue
            cut, kept = cut_before(d, from_s, words[id(d)], self.tokenizer(
                d.request.language, d.request.task), config.timestamps == "tokens")
            words[id(cut)] = kept
            out.append((from_s, cut))
        return out

    def redecode(self, failed: list[Decoded]) -> list[Decoded]:
        """Walk failed chunks up the temperature schedule; keep each chunk's best attempt."""
        best = {id(d.request): d for d in failed}
        todo = list(failed)
        for temperature in self.decode.temperatures[1:]:
            if not todo:
                break
            requests = [d.request for d in todo]
            encoded = [d.encoded for d in todo]
            results = self._generate(requests, encoded, temperature)
            todo = []
            for request, result, e in zip(requests, results, encoded, strict=True):
                attempt = self.to_decoded(request, result, temperature, e)
                best[id(request)] = _better(best[id(request)], attempt, self.decode)
                if self.needs_fallback(attempt):
                    todo.append(attempt)
        return [best[id(d.request)] for d in failed]


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


def _torch_encoder(plan: ModelPlan, device_index: Sequence[int]) -> Any:
    """The torch encoder where the plan has it, else None (CTranslate2's own)."""
    if not plan.torch_encoder:
        return None
    from engine.decode.torch_encoder import TorchEncoder

    dtype = ("float32" if plan.device == "cpu"
             or plan.compute_type in ("float32", "int16", "int8", "int8_float32")
             else "bfloat16" if "bfloat16" in plan.compute_type else "float16")
    where = "cpu" if plan.device == "cpu" else f"cuda:{device_index[0]}"
    return TorchEncoder(plan.path, device=where, dtype=dtype)


def _host_features(windows: Sequence[Chunk | PackedChunk]) -> np.ndarray:
    """The windows' log-mel, stacked; each computed by a decode worker."""
    features = []
    for window in windows:
        if not isinstance(window.features, np.ndarray):
            raise ValueError("features left for the device's log-mel reached CTranslate2's "
                             "encoder; only the torch encoder computes them")
        features.append(window.features)
    return np.stack(features)


def _prompt_of(request: ChunkRequest) -> tuple[str, str, tuple[int, ...]]:
    return request.language, request.task, request.prompt_tokens


def _too_repetitive(d: Decoded, config: DecodeConfig) -> bool:
    """faster-whisper's repetition rule: a compression ratio over the threshold."""
    limit = config.compression_ratio_threshold
    return limit is not None and d.compression_ratio > limit


def _better(old: Decoded, new: Decoded, config: DecodeConfig) -> Decoded:
    """Prefer an attempt under the compression threshold, then the higher log-probability."""

    def rank(d: Decoded) -> tuple[bool, float]:
        return (not _too_repetitive(d, config), d.avg_logprob)

    return new if rank(new) > rank(old) else old
