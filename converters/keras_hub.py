"""KerasHub `WhisperBackbone` presets (`save_to_preset` folders) -> CTranslate2 Whisper models.

A preset holds `config.json` (the backbone's constructor arguments), `model.weights.h5` and,
when the tokenizer was saved with it, `tokenizer.json` (its special and language token ids) and
`assets/tokenizer/{vocabulary.json,merges.txt}`. The weights are read with h5py (Keras is not
needed) and mapped onto a Transformers `WhisperForConditionalGeneration`, whose CTranslate2
conversion, alignment heads and language ids are `converters.whisper`'s. The tokenizer is built
from the preset's vocabulary and merges with Whisper's special and timestamp tokens at their ids.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from typing import Any

import numpy as np

from converters.base import Converter
from converters.keras_tokenizer import build_tokenizer, read_tokenizer_assets
from converters.registry import register_converter
from converters.whisper import MEL_BINS, has_tokenizer
from engine.errors import ConversionError

WEIGHTS = "model.weights.h5"
ARCH_KEYS = ("vocabulary_size", "num_layers", "num_heads", "hidden_dim", "intermediate_dim",
             "num_mels", "max_encoder_sequence_length", "max_decoder_sequence_length")


def keras_preset_type(config: dict[str, Any]) -> str | None:
    """`keras_hub.<Class>` for a KerasHub preset's config.json, None for anything else."""
    registered = str(config.get("registered_name") or "")
    if registered.startswith("keras_hub>"):
        return "keras_hub." + registered.split(">", 1)[1]
    if str(config.get("module", "")).startswith("keras_hub") and config.get("class_name"):
        return f"keras_hub.{config['class_name']}"
    return None


def is_keras_preset(folder: str) -> bool:
    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8") as f:
        return keras_preset_type(json.load(f)) is not None


def read_h5(path: str) -> dict[str, np.ndarray]:
    """Every array of a Keras 3 weights file, by its path inside the file (float32)."""
    import h5py

    arrays: dict[str, np.ndarray] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            arrays[name] = np.asarray(obj[()], dtype=np.float32)

    try:
        with h5py.File(path, "r") as f:
            f.visititems(visit)
    except OSError as e:
        raise ConversionError(f"cannot read {path}: {str(e).splitlines()[0]}") from e
    return arrays


def h5_shapes(path: str) -> dict[str, tuple[int, ...]]:
    """The arrays' shapes, read from the file's headers (no data is loaded)."""
    import h5py

    shapes: dict[str, tuple[int, ...]] = {}
    try:
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, obj: shapes.__setitem__(name, tuple(obj.shape))
                         if isinstance(obj, h5py.Dataset) else None)
    except OSError as e:
        raise ConversionError(f"cannot read {path}: {str(e).splitlines()[0]}") from e
    return shapes


def _numbered(names: set[str], base: str) -> list[str]:
    """`base`, `base_1`, `base_2`, ... (Keras's names for a layer class, in creation order)."""
    pattern = re.compile(rf"^{base}(?:_(\d+))?$")
    found = [(int(m.group(1) or 0), n) for n in names if (m := pattern.match(n))]
    return [n for _, n in sorted(found)]


def layer_groups(keys: set[str] | list[str]) -> dict[str, list[str]]:
    """The h5 group of each part of the backbone, transformer layers in order."""
    tops = {k.split("/")[1] for k in keys if k.startswith("layers/")}
    return {"conv": _numbered(tops, "conv1d"), "norm": _numbered(tops, "layer_normalization"),
            "encoder": _numbered(tops, "whisper_encoder"),
            "decoder": _numbered(tops, "whisper_decoder")}


def _attention(w: dict[str, np.ndarray], group: str, hf: str) -> dict[str, np.ndarray]:
    """One Keras (hidden, heads, head_dim) attention block as HF q/k/v/out projections."""
    out: dict[str, np.ndarray] = {}
    for keras_name, hf_name in (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj")):
        kernel = w[f"{group}/{keras_name}_dense/vars/0"]
        out[f"{hf}.{hf_name}.weight"] = kernel.reshape(kernel.shape[0], -1).T
        if f"{group}/{keras_name}_dense/vars/1" in w:
            out[f"{hf}.{hf_name}.bias"] = w[f"{group}/{keras_name}_dense/vars/1"].reshape(-1)
    kernel = w[f"{group}/output_dense/vars/0"]
    out[f"{hf}.out_proj.weight"] = kernel.reshape(-1, kernel.shape[-1]).T
    out[f"{hf}.out_proj.bias"] = w[f"{group}/output_dense/vars/1"]
    return out


def _norm(w: dict[str, np.ndarray], group: str, hf: str) -> dict[str, np.ndarray]:
    return {f"{hf}.weight": w[f"{group}/vars/0"], f"{hf}.bias": w[f"{group}/vars/1"]}


def _dense(w: dict[str, np.ndarray], group: str, hf: str) -> dict[str, np.ndarray]:
    return {f"{hf}.weight": w[f"{group}/vars/0"].T, f"{hf}.bias": w[f"{group}/vars/1"]}


def _transformer_layer(w: dict[str, np.ndarray], group: str, hf: str,
                       cross: bool) -> dict[str, np.ndarray]:
    g = f"layers/{group}"
    out = {**_attention(w, f"{g}/_self_attention_layer", f"{hf}.self_attn"),
           **_norm(w, f"{g}/_self_attention_layer_norm", f"{hf}.self_attn_layer_norm"),
           **_norm(w, f"{g}/_feedforward_layer_norm", f"{hf}.final_layer_norm"),
           **_dense(w, f"{g}/_feedforward_intermediate_dense", f"{hf}.fc1"),
           **_dense(w, f"{g}/_feedforward_output_dense", f"{hf}.fc2")}
    if cross:
        out.update(_attention(w, f"{g}/_cross_attention_layer", f"{hf}.encoder_attn"))
        out.update(_norm(w, f"{g}/_cross_attention_layer_norm", f"{hf}.encoder_attn_layer_norm"))
    return out


def hf_state_dict(w: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The backbone's weights under `WhisperForConditionalGeneration`'s names and layouts."""
    groups = layer_groups(set(w))
    conv1, conv2 = groups["conv"]
    encoder_norm, decoder_norm = groups["norm"]  # created (and numbered) encoder first
    state = {
        "model.encoder.conv1.weight": w[f"layers/{conv1}/vars/0"].transpose(2, 1, 0),
        "model.encoder.conv1.bias": w[f"layers/{conv1}/vars/1"],
        "model.encoder.conv2.weight": w[f"layers/{conv2}/vars/0"].transpose(2, 1, 0),
        "model.encoder.conv2.bias": w[f"layers/{conv2}/vars/1"],
        "model.encoder.embed_positions.weight": w["layers/position_embedding/vars/0"],
        "model.decoder.embed_tokens.weight":
            w["layers/token_and_position_embedding/token_embedding/vars/0"],
        "model.decoder.embed_positions.weight":
            w["layers/token_and_position_embedding/position_embedding/vars/0"],
        **_norm(w, f"layers/{encoder_norm}", "model.encoder.layer_norm"),
        **_norm(w, f"layers/{decoder_norm}", "model.decoder.layer_norm"),
    }
    for side in ("encoder", "decoder"):
        for i, group in enumerate(groups[side]):
            state.update(_transformer_layer(w, group, f"model.{side}.layers.{i}",
                                            cross=side == "decoder"))
    state["proj_out.weight"] = state["model.decoder.embed_tokens.weight"]
    return state


@register_converter("keras_hub.WhisperBackbone")
class KerasWhisperConverter(Converter):
    """Converts a `keras_hub.models.WhisperBackbone` preset (any size, .en or multilingual)."""

    def __init__(self, source: str, quantization: str, tokenizer_from: str | None = None) -> None:
        super().__init__(source, quantization, tokenizer_from)
        with open(os.path.join(source, "config.json"), encoding="utf-8") as f:
            self.arch: dict[str, Any] = json.load(f).get("config", {})
        self.weights = os.path.join(source, WEIGHTS)
        self.tokenizer_dir = tokenizer_from or source

    def problems(self) -> list[str]:
        a = self.arch
        missing = [k for k in ARCH_KEYS if not isinstance(a.get(k), int)]
        if missing:
            return [f"config.json lacks the backbone's {', '.join(missing)}"]
        found = []
        if a["num_mels"] not in MEL_BINS:
            found.append(f"num_mels is {a['num_mels']}, expected 80 or 128")
        if a["max_encoder_sequence_length"] != 3000:
            found.append(f"max_encoder_sequence_length is {a['max_encoder_sequence_length']}; "
                         "Whisper's encoder (and CTranslate2's) takes 3000 frames (30 s)")
        if not os.path.isfile(self.weights):
            found.append(f"no weights: {WEIGHTS} is missing")
        else:
            found += self._shape_problems(h5_shapes(self.weights))
        try:
            self.tokenizer_assets()
        except ConversionError as e:
            found.append(str(e))
        return found

    def _shape_problems(self, shapes: dict[str, tuple[int, ...]]) -> list[str]:
        a = self.arch
        groups = layer_groups(list(shapes))
        if len(groups["conv"]) != 2 or len(groups["norm"]) != 2:
            return [f"{WEIGHTS} does not hold a WhisperBackbone's layers (found "
                    f"{len(groups['conv'])} convolutions, {len(groups['norm'])} final norms)"]
        width = a["hidden_dim"]
        expected = {
            f"layers/{groups['conv'][0]}/vars/0": (3, a["num_mels"], width),
            "layers/token_and_position_embedding/token_embedding/vars/0":
                (a["vocabulary_size"], width),
            "layers/position_embedding/vars/0": (a["max_encoder_sequence_length"] // 2, width),
            "layers/token_and_position_embedding/position_embedding/vars/0":
                (a["max_decoder_sequence_length"], width),
        }
        for side in ("encoder", "decoder"):
            for group in groups[side]:
                head_dim = width // a["num_heads"]
                expected[f"layers/{group}/_self_attention_layer/query_dense/vars/0"] = (
                    width, a["num_heads"], head_dim)
                expected[f"layers/{group}/_feedforward_intermediate_dense/vars/0"] = (
                    width, a["intermediate_dim"])
        found = [f"weight {k} has shape {list(shapes[k]) if k in shapes else None}, config.json "
                 f"implies {list(v)}" for k, v in expected.items() if shapes.get(k) != v]
        for side in ("encoder", "decoder"):
            if len(groups[side]) != a["num_layers"]:
                found.append(f"the weights hold {len(groups[side])} {side} layers, config.json "
                             f"says {a['num_layers']}")
        return found

    def tokenizer_assets(self) -> Any:
        """The vocabulary, merges and special ids (a KerasHub or Hugging Face tokenizer folder).

        Raises:
            ConversionError: the folder holds no tokenizer, or one that is not Whisper's.
        """
        if not _is_keras_tokenizer(self.tokenizer_dir) and has_tokenizer(self.tokenizer_dir):
            return None  # a Hugging Face tokenizer: used as it is
        return read_tokenizer_assets(self.tokenizer_dir, self.arch["vocabulary_size"])

    def write(self, folder: str) -> dict[str, Any]:
        from converters.whisper import (
            _ct2_convert,
            _load_tokenizer,
            fix_alignment_heads,
            fix_language_ids,
        )

        assets = self.tokenizer_assets()
        tokenizer = (_load_tokenizer(self.tokenizer_dir) if assets is None
                     else build_tokenizer(assets))
        model = self._hf_model(tokenizer)
        with tempfile.TemporaryDirectory() as hf_config:  # CTranslate2 reads the config by path
            model.config.save_pretrained(hf_config)
            _ct2_convert(hf_config, model, tokenizer, folder, self.quantization)
        tokenizer.backend_tokenizer.save(os.path.join(folder, "tokenizer.json"))
        from transformers import WhisperFeatureExtractor

        WhisperFeatureExtractor(feature_size=self.arch["num_mels"]).to_json_file(  # type: ignore[no-untyped-call]
            os.path.join(folder, "preprocessor_config.json"))
        config = {"decoder_layers": self.arch["num_layers"],
                  "decoder_attention_heads": self.arch["num_heads"]}
        fix_alignment_heads(folder, config)  # CTranslate2's default when none are given
        heads = "default (second half of the decoder): KerasHub presets carry none"
        fix_language_ids(folder, tokenizer, self.arch["vocabulary_size"] >= 51865)
        return self._metadata(heads)

    def _hf_model(self, tokenizer: Any) -> Any:
        """A Transformers Whisper holding the preset's weights (strictly: every tensor used)."""
        import torch
        from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

        a = self.arch
        ids = tokenizer.convert_tokens_to_ids
        sot, eot = ids("<|startoftranscript|>"), ids("<|endoftext|>")
        config = WhisperConfig(
            vocab_size=a["vocabulary_size"], num_mel_bins=a["num_mels"], d_model=a["hidden_dim"],
            encoder_layers=a["num_layers"], decoder_layers=a["num_layers"],
            encoder_attention_heads=a["num_heads"], decoder_attention_heads=a["num_heads"],
            encoder_ffn_dim=a["intermediate_dim"], decoder_ffn_dim=a["intermediate_dim"],
            max_source_positions=a["max_encoder_sequence_length"] // 2,
            max_target_positions=a["max_decoder_sequence_length"],
            decoder_start_token_id=sot, eos_token_id=eot, pad_token_id=eot, bos_token_id=eot)
        model: Any = WhisperForConditionalGeneration(config)
        model.eval()
        state = {k: torch.from_numpy(np.ascontiguousarray(v))
                 for k, v in hf_state_dict(read_h5(self.weights)).items()}
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ConversionError(f"the weights of {self.source} do not fit a Whisper of its "
                                  f"config.json: {str(e).splitlines()[1][:300]}") from e
        model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
            decoder_start_token_id=sot, eos_token_id=eot,
            suppress_tokens=_non_speech_tokens(tokenizer, a["vocabulary_size"] >= 51865),
            begin_suppress_tokens=[220, eot])
        return model

    def _metadata(self, alignment_heads_source: str) -> dict[str, Any]:
        from converters.whisper import _version
        from engine.backends.common import library_versions

        a = self.arch
        versions = library_versions()
        for name in ("transformers", "torch", "h5py"):
            versions[name] = _version(name)
        return {
            "source": os.path.abspath(self.source),
            "source_sha256": _sha256([os.path.join(self.source, "config.json"), self.weights]),
            "source_format": "keras_hub.WhisperBackbone preset",
            "tokenizer_from": os.path.abspath(self.tokenizer_dir),
            "quantization": self.quantization,
            "converter": "batchscribe KerasWhisperConverter",
            "versions": versions,
            "n_mels": a["num_mels"],
            "vocab_size": a["vocabulary_size"],
            "multilingual": a["vocabulary_size"] >= 51865,
            "encoder_layers": a["num_layers"],
            "decoder_layers": a["num_layers"],
            "d_model": a["hidden_dim"],
            "alignment_heads": alignment_heads_source,
        }


def _is_keras_tokenizer(folder: str) -> bool:
    return is_keras_preset(folder) or os.path.isfile(
        os.path.join(folder, "assets", "tokenizer", "vocabulary.json"))


def _non_speech_tokens(tokenizer: Any, multilingual: bool) -> list[int]:
    """OpenAI's suppression list (symbols that are not speech), computed from the tokenizer."""
    from faster_whisper.tokenizer import Tokenizer

    fw = Tokenizer(tokenizer.backend_tokenizer, multilingual, task="transcribe", language="en")
    return list(fw.non_speech_tokens)


def _sha256(paths: list[str]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            while block := f.read(1 << 22):
                digest.update(block)
    return digest.hexdigest()
