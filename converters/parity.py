"""Parity of a converted model with its source (Hugging Face or KerasHub), step by step.

CTranslate2 decodes greedily from random log-mel features and returns each step's logits
(`return_logits_vocab`); the Transformers model runs teacher-forced on the same prompt and tokens.
At every step the two must agree (max abs difference of the logits, same argmax). Entries that
CTranslate2's Whisper decoding rules mask out (timestamp and suppression logic) are left out:
a bare Transformers forward pass does not apply those rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import ConversionError


@dataclass(frozen=True)
class ParityReport:
    steps: int
    max_abs_diff: float
    argmax_agree: int
    prompt: list[int]
    tokens: list[int]

    @property
    def ok(self) -> bool:
        return self.steps > 0 and self.argmax_agree == self.steps

    def passes(self, tolerance: float) -> bool:
        return self.ok and self.max_abs_diff < tolerance


def random_features(n_mels: int, seed: int = 0) -> np.ndarray:
    """Log-mel-like input: values in Whisper's normalised range, [1, n_mels, 3000]."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.5, size=(1, n_mels, 3000)).astype(np.float32)


def decode_prompt(runner: Any) -> list[int]:
    """start-of-transcript (+ English, transcribe for multilingual models), no timestamps."""
    tokenizer = runner.tokenizer("en", "transcribe")
    return [*tokenizer.sot_sequence, tokenizer.no_timestamps]


def check_parity(ct2_model_dir: str, hf_source: str, steps: int = 12, seed: int = 0,
                 compute_type: str = "float32") -> ParityReport:
    """Compare the converted model with the checkpoint it came from (both on the CPU)."""
    from engine.config import DecodeConfig, ModelConfig
    from engine.decode.runner import ModelRunner

    runner = ModelRunner(ModelConfig(path=ct2_model_dir, device="cpu", compute_type=compute_type,
                                     replicas=1), DecodeConfig(beam_size=1))
    features = random_features(runner.n_mels, seed)
    prompt = decode_prompt(runner)
    tokens, ct2_logits = ct2_greedy(runner, features, prompt, steps)

    hf_logits = reference_logits(hf_source, features, prompt + tokens[:-1])[len(prompt) - 1:]

    worst, agree = 0.0, 0
    for step, (ours, theirs) in enumerate(zip(ct2_logits, hf_logits, strict=True)):
        allowed = np.isfinite(ours) & (ours > -1e9)
        worst = max(worst, float(np.abs(ours[allowed] - theirs[allowed]).max()))
        candidates = np.flatnonzero(allowed)
        agree += int(candidates[np.argmax(theirs[allowed])] == tokens[step])
    return ParityReport(len(ct2_logits), worst, agree, prompt, tokens)


def reference_logits(source: str, features: np.ndarray, ids: list[int]) -> np.ndarray:
    """The source model's logits for every position of `ids`, teacher-forced: [len(ids), V]."""
    import torch

    from converters.keras_hub import is_keras_preset

    if is_keras_preset(source):
        return keras_logits(source, features, ids)
    from transformers import WhisperForConditionalGeneration

    hf: Any = WhisperForConditionalGeneration.from_pretrained(source, dtype=torch.float32)
    hf.eval()
    with torch.no_grad():
        out = hf(input_features=torch.from_numpy(features), decoder_input_ids=torch.tensor([ids]))
    logits: np.ndarray = out.logits[0].numpy()
    return logits


def keras_logits(preset: str, features: np.ndarray, ids: list[int]) -> np.ndarray:
    """A KerasHub WhisperBackbone preset's logits (LM head tied to the token embedding, as
    Whisper's is). Needs keras and keras-hub; runs on the torch backend unless another is set."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
        import keras_hub
    except ImportError as e:
        raise ConversionError(f"checking a KerasHub preset needs {e.name}: pip install "
                              "'batchscribe[keras]' && pip install --no-deps keras-hub") from e
    backbone = keras_hub.models.WhisperBackbone.from_preset(preset)
    out = backbone({"encoder_features": np.transpose(features, (0, 2, 1)),
                    "decoder_token_ids": np.array([ids], dtype="int32"),
                    "decoder_padding_mask": np.ones((1, len(ids)), dtype="int32")})
    hidden = keras.ops.convert_to_numpy(out["decoder_sequence_output"])[0]
    embedding = keras.ops.convert_to_numpy(backbone.token_embedding.embeddings)
    logits: np.ndarray = hidden.astype(np.float64) @ embedding.T.astype(np.float64)
    return logits.astype(np.float32)


def ct2_greedy(runner: Any, features: np.ndarray, prompt: list[int],
               steps: int) -> tuple[list[int], list[np.ndarray]]:
    """Greedy tokens (the end-of-text token included) and each step's logits, from CTranslate2."""
    import ctranslate2

    result = runner.model.generate(
        ctranslate2.StorageView.from_array(features), [prompt], beam_size=1,
        max_length=len(prompt) + steps, return_logits_vocab=True, suppress_blank=False,
        suppress_tokens=[], return_no_speech_prob=False)[0]
    tokens = list(result.sequences_ids[0])
    logits = [np.array(step).reshape(-1) for step in result.logits[0]]
    if len(logits) > len(tokens):  # the last step chose end-of-text, which is not returned
        tokens.append(runner.tokenizer().eot)
    return tokens, logits[: len(tokens)]
