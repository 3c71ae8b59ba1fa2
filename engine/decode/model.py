"""The model adapter: the one CTranslate2 Whisper model of a process, and nothing else.

Loads the model (with the torch encoder where the plan has it, `torch_encoder.py`), and does what
only the model can: encode windows, generate text from prompts, align text to audio, detect
languages; and probes what the host offers it (CUDA devices, PyTorch) for the plan. It is the
only code that imports ctranslate2 (torch: its encoder modules, `torch_encoder.py` and
`device_mel.py`). The decoding policies (fallback, continuations, packing, segments) work on
the typed values it returns (`Generated`, `Word`); `runner.py` composes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.config import DecodeConfig, ModelConfig
from engine.decode.assemble import TIME_PRECISION_S
from engine.decode.models import model_fingerprint
from engine.decode.vocabulary import Vocabulary
from engine.decode.words import Word, from_alignment
from engine.errors import ModelLoadError
from engine.types import DECODER_TOKENS, FRAMES_PER_S, Chunk, PackedChunk, Prompt


@dataclass(frozen=True)
class ModelPlan:
    """What the model will be, decided before its weights load (`plan.plan_model`)."""

    path: str
    device: str  # "cpu" or "cuda"
    compute_type: str
    replicas: int  # per device
    threads: int  # CTranslate2 intra-op threads per replica
    width: int  # the encoder's d_model
    n_mels: int
    torch_encoder: bool
    features_on_device: bool  # the workers ship samples, the torch encoder computes the log-mel


@dataclass(frozen=True, slots=True)
class Generated:
    """The hypotheses of one prompt: token sequences with their scores (best first is not
    promised), and the probability that the window holds no speech."""

    sequences: tuple[tuple[int, ...], ...]
    scores: tuple[float, ...]
    no_speech_prob: float


@dataclass(frozen=True, slots=True)
class ToAlign:
    """A text to align: its text tokens, with the encoder output and duration of its view."""

    encoded: Any
    language: str
    task: str
    text: tuple[int, ...]
    duration_s: float


class WhisperModel:
    """A loaded CTranslate2 Whisper model (and its vocabulary) for one plan."""

    def __init__(self, model: ModelConfig, plan: ModelPlan) -> None:
        self.path, self.device, self.compute_type = plan.path, plan.device, plan.compute_type
        self.replicas = plan.replicas
        self.features_on_device = plan.features_on_device
        # torch's import and load, and the model's digest for the run record (1-3 s for a large
        # model.bin), beside CTranslate2's load
        with ThreadPoolExecutor(2) as loader:
            digest = loader.submit(model_fingerprint, self.path)
            torch_encoder = loader.submit(_torch_encoder, plan, model.device_index)
            self.model = self._load(model, plan.threads)
            self.torch = torch_encoder.result()
            self.fingerprint = digest.result()
        self.vocabulary = Vocabulary.from_folder(self.path, bool(self.model.is_multilingual))
        self.suppressed = self.vocabulary.suppressed()
        self.devices = len(model.device_index) if self.device == "cuda" else 1

    def _load(self, model: ModelConfig, threads: int) -> Any:
        import ctranslate2

        try:
            return ctranslate2.models.Whisper(
                self.path, device=self.device, device_index=list(model.device_index),
                compute_type=self.compute_type, inter_threads=self.replicas,
                intra_threads=threads,
            )
        except Exception as e:
            raise ModelLoadError(
                f"cannot load the Whisper model in {self.path} on {self.device} "
                f"({self.compute_type}): {str(e).splitlines()[0]}"
            ) from e

    @property
    def n_mels(self) -> int:
        return int(self.model.n_mels)

    @property
    def is_multilingual(self) -> bool:
        return bool(self.model.is_multilingual)

    def describe(self) -> dict[str, Any]:
        """The model as the run record (`.batchscribe/runs/`) keeps it."""
        return {"path": self.path, "sha256_16": self.fingerprint,
                "device": self.device, "compute_type": self.compute_type,
                "replicas_per_device": self.replicas, "devices": self.devices,
                "n_mels": self.n_mels,
                "encoder": "ctranslate2" if self.torch is None else "torch",
                "features": "device" if self.features_on_device else "workers",
                "multilingual": self.is_multilingual}

    def encode(self, windows: Sequence[Chunk | PackedChunk]) -> Any:
        """The encoder's output for windows [batch, frames, width]: on the host, or on the GPU
        with the torch encoder."""
        import ctranslate2

        if self.torch is not None:
            return self.torch.encode_windows([w.features for w in windows])
        features = ctranslate2.StorageView.from_array(_host_features(windows))
        encoded = self.model.encode(features, to_cpu=True)
        if encoded.dtype == ctranslate2.DataType.bfloat16:  # numpy has no bfloat16
            encoded = encoded.to(ctranslate2.DataType.float32)
        return np.asarray(encoded)

    def generate(self, prompts: Sequence[Prompt], encoded: Any, temperature: float,
                 config: DecodeConfig) -> list[Generated]:
        """Each prompt's hypotheses over its encoder output: beam search at temperature 0,
        else `best_of` samples; at most `config.max_new_tokens` new tokens when set."""
        if temperature > 0:
            search: dict[str, Any] = dict(beam_size=1, num_hypotheses=config.best_of,
                                          sampling_topk=0, sampling_temperature=temperature)
        else:
            search = dict(beam_size=config.beam_size, patience=config.patience)
        tokens = [self.vocabulary.tokens(p) for p in prompts]
        max_length = DECODER_TOKENS
        if config.max_new_tokens is not None:
            max_length = min(max_length, max(map(len, tokens)) + config.max_new_tokens)
        results = self.model.generate(
            self._view(encoded), tokens, length_penalty=config.length_penalty,
            max_length=max_length, return_scores=True, return_no_speech_prob=True,
            suppress_blank=config.suppress_blank, suppress_tokens=self.suppressed,
            max_initial_timestamp_index=int(round(
                config.max_initial_timestamp_s / TIME_PRECISION_S)),
            **search,
        )
        return [Generated(tuple(map(tuple, r.sequences_ids)), tuple(r.scores),
                          float(r.no_speech_prob)) for r in results]

    def align(self, texts: Sequence[ToAlign]) -> list[list[Word]]:
        """Word timings of each text (cross-attention alignment on the encoder output kept
        with it), one `align` call per language and task."""
        out: list[list[Word]] = [[] for _ in texts]
        groups: dict[tuple[str, str], list[int]] = {}
        for i, text in enumerate(texts):
            if text.text:
                groups.setdefault((text.language, text.task), []).append(i)
        for (language, task), members in groups.items():
            tokenizer = self.vocabulary.tokenizer(language, task)
            chosen = [texts[i] for i in members]
            frames = [int(round(t.duration_s * FRAMES_PER_S)) for t in chosen]
            results = self.model.align(self._view([t.encoded for t in chosen]),
                                       tokenizer.sot_sequence, [list(t.text) for t in chosen],
                                       frames)
            for i, text, result in zip(members, chosen, results, strict=True):
                out[i] = from_alignment(tokenizer, list(text.text), result.alignments,
                                        result.text_token_probs, text.duration_s)
        return out

    def detect_languages(self, chunks: Sequence[Chunk]) -> list[tuple[str, float]]:
        """The most probable language of each chunk, with its probability."""
        import ctranslate2

        if self.torch is not None:
            view = self._view(self.torch.encode_windows([c.features for c in chunks]))
        else:
            view = ctranslate2.StorageView.from_array(_host_features(chunks))
        results = self.model.detect_language(view)
        return [(ranked[0][0].strip("<|>"), float(ranked[0][1])) for ranked in results]

    def _view(self, encoded: Any) -> Any:
        """A StorageView over encoder outputs (a batch, or a list of rows), where they are."""
        import ctranslate2

        if self.torch is not None:
            from engine.decode.torch_encoder import storage_view

            return storage_view(encoded)
        rows = encoded if isinstance(encoded, np.ndarray) else np.stack(encoded)
        return ctranslate2.StorageView.from_array(np.ascontiguousarray(rows))


def cuda_device_count() -> int:
    """CUDA devices CTranslate2 can use (0 without a driver, or with one too old for its CUDA
    runtime)."""
    import ctranslate2

    try:
        return int(ctranslate2.get_cuda_device_count())
    except RuntimeError:
        return 0


def torch_installed(cuda: bool = False) -> bool:
    """Whether PyTorch is installed (and, with `cuda`, sees a CUDA device)."""
    try:
        import torch
    except ImportError:
        return False
    return not cuda or bool(torch.cuda.is_available())


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
