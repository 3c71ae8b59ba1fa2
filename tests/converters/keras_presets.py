"""Randomly initialised KerasHub WhisperBackbone presets with the shape of each preset family.

Widths are tiny (64) so they build in seconds; what matters is what KerasHub's presets differ in:
the vocabulary (.en 51864, multilingual 51865; 51866 with large-v3's `<|yue|>`), mel bins (80; 128
for a large-v3-shaped fine-tune), depth. The tokenizer is a real one (tiny.en's, the multilingual
base's) re-saved the way KerasHub saves a `WhisperTokenizer`: vocabulary and merges as assets, the
special and language token ids in tokenizer.json.
"""

from __future__ import annotations

import json
import os

import numpy as np
from checkpoints import tokenizer_file

os.environ.setdefault("KERAS_BACKEND", "torch")

PRESETS = {
    # name: (vocabulary_size, num_mels, num_layers, tokenizer kind)
    "whisper_tiny_en": (51864, 80, 2, "en"),
    "whisper_base_multi": (51865, 80, 2, "multilingual"),
    "whisper_large_multi_v2": (51865, 80, 3, "multilingual"),
    "large-v3-shaped": (51866, 128, 2, "v3"),
}
KERAS_SPECIAL = ("<|endoftext|>", "<|startoftranscript|>", "<|translate|>", "<|transcribe|>",
                 "<|startoflm|>", "<|startofprev|>", "<|notimestamps|>")


def keras_tokenizer(kind: str, work: str) -> object:
    """A KerasHub WhisperTokenizer holding the real tokenizer's vocabulary, merges and ids."""
    import keras_hub

    with open(tokenizer_file(kind, work), encoding="utf-8") as f:
        data = json.load(f)
    added = {t["content"]: t["id"] for t in data["added_tokens"]}
    special = {t: added[t] for t in KERAS_SPECIAL}
    sot, translate = special["<|startoftranscript|>"], special["<|translate|>"]
    languages = {t: i for t, i in added.items() if sot < i < translate}
    vocabulary = data["model"]["vocab"]
    return keras_hub.models.WhisperTokenizer(
        vocabulary=vocabulary,
        merges=[m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]],
        special_tokens=special, language_tokens=languages if kind != "en" else None)


def build_preset(name: str, folder: str, work: str, with_tokenizer: bool = True,
                 seed: int = 0) -> str:
    """save_to_preset a random backbone of preset family `name` (and its tokenizer)."""
    import keras_hub

    vocab, mels, layers, kind = PRESETS[name]
    backbone = keras_hub.models.WhisperBackbone(
        vocabulary_size=vocab, num_layers=layers, num_heads=4, hidden_dim=64,
        intermediate_dim=128, num_mels=mels, max_encoder_sequence_length=3000,
        max_decoder_sequence_length=448)
    randomise(backbone, seed)
    backbone.save_to_preset(folder)
    if with_tokenizer:
        keras_tokenizer(kind, work).save_to_preset(folder)  # type: ignore[attr-defined]
    return folder


def randomise(backbone: object, seed: int) -> None:
    """Every weight random (norm scales around 1): a swapped or transposed tensor shows."""
    rng = np.random.default_rng(seed)
    for weight in backbone.weights:  # type: ignore[attr-defined]
        shape = tuple(weight.shape)
        values = rng.normal(0.0, 0.08, size=shape)
        if "gamma" in weight.path:
            values = 1.0 + rng.normal(0.0, 0.2, size=shape)
        weight.assign(values.astype("float32"))
