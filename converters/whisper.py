"""Hugging Face Whisper checkpoints -> CTranslate2 Whisper models the engine can load.

The weight mapping is CTranslate2's own `TransformersConverter`; this module owns the rest:
finding the tokenizer of a Trainer `checkpoint-N` folder, checking that weights match the config
before anything is written, the preprocessor config with the right number of mel bins, sane
alignment heads for distilled and fine-tuned models, and the metadata file.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from typing import Any

from converters.base import Converter, write_json
from converters.registry import register_converter
from engine.errors import ConversionError

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
MEL_BINS = (80, 128)


def read_config(source: str) -> dict[str, Any]:
    path = os.path.join(source, "config.json")
    if not os.path.isfile(path):
        raise ConversionError(f"{source} has no config.json: not a Hugging Face checkpoint folder")
    with open(path, encoding="utf-8") as f:
        config: dict[str, Any] = json.load(f)
    return config


def has_tokenizer(folder: str) -> bool:
    files = set(os.listdir(folder)) if os.path.isdir(folder) else set()
    return "tokenizer.json" in files or {"vocab.json", "merges.txt"} <= files


def weight_files(source: str) -> list[str]:
    """The files holding the weights (shards included), in a stable order."""
    for name in WEIGHT_FILES:
        path = os.path.join(source, name)
        if not os.path.isfile(path):
            continue
        if name.endswith(".index.json"):
            with open(path, encoding="utf-8") as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
            return [path, *(os.path.join(source, s) for s in shards)]
        return [path]
    return []


@register_converter("whisper")
class WhisperConverter(Converter):
    """Converts `WhisperForConditionalGeneration` checkpoints (any size, .en or multilingual)."""

    def __init__(self, source: str, quantization: str, tokenizer_from: str | None = None) -> None:
        super().__init__(source, quantization, tokenizer_from)
        self.config = read_config(source)
        candidates = [tokenizer_from] if tokenizer_from else [
            source, os.path.dirname(os.path.abspath(source))]
        self.looked_in = [c for c in candidates if c]
        self.tokenizer_dir = next((c for c in self.looked_in if has_tokenizer(c)), None)

    def problems(self) -> list[str]:
        found = []
        c = self.config
        if c.get("num_mel_bins") not in MEL_BINS:
            found.append(f"num_mel_bins is {c.get('num_mel_bins')}, expected 80 or 128")
        if not weight_files(self.source):
            found.append(f"no weights: expected one of {', '.join(WEIGHT_FILES)}")
        else:
            found += self._shape_problems()
        if self.tokenizer_dir is None:
            found.append("no tokenizer: tokenizer.json (or vocab.json + merges.txt) is missing in "
                         + " and ".join(self.looked_in) + "; give the folder that holds it")
        preprocessor = self._preprocessor_config()
        if preprocessor and preprocessor.get("feature_size") not in (None, c.get("num_mel_bins")):
            found.append(f"preprocessor_config.json has feature_size "
                         f"{preprocessor.get('feature_size')} but the model has "
                         f"{c.get('num_mel_bins')} mel bins")
        return found

    def _shape_problems(self) -> list[str]:
        """Compare a few weight shapes with the config, from safetensors headers (no loading)."""
        files = [f for f in weight_files(self.source) if f.endswith(".safetensors")]
        if not files:
            return []  # .bin weights: checked when loaded
        from safetensors import safe_open

        shapes: dict[str, list[int]] = {}
        for path in files:
            with safe_open(path, framework="pt") as f:
                for key in f.keys():  # noqa: SIM118 (a safe_open handle is not iterable)
                    shapes[key.removeprefix("model.")] = list(f.get_slice(key).get_shape())
        c = self.config
        expected = {
            "encoder.conv1.weight": [c.get("d_model"), c.get("num_mel_bins"), 3],
            "decoder.embed_tokens.weight": [c.get("vocab_size"), c.get("d_model")],
        }
        found = [f"weight {k} has shape {shapes.get(k)}, the config implies {v}"
                 for k, v in expected.items() if shapes.get(k) != v]
        for side in ("encoder", "decoder"):
            layers = {k.split(".")[2] for k in shapes if k.startswith(f"{side}.layers.")}
            if len(layers) != c.get(f"{side}_layers"):
                found.append(f"the weights hold {len(layers)} {side} layers, the config says "
                             f"{c.get(f'{side}_layers')}")
        return found

    def _preprocessor_config(self) -> dict[str, Any] | None:
        for folder in (self.source, *self.looked_in):
            path = os.path.join(folder, "preprocessor_config.json")
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as f:
                    loaded: dict[str, Any] = json.load(f)
                    return loaded
        return None

    def write(self, folder: str) -> dict[str, Any]:
        model = self._load_checked_model()
        tokenizer = _load_tokenizer(self.tokenizer_dir or self.source)
        _ct2_convert(self.source, model, tokenizer, folder, self.quantization)
        tokenizer.backend_tokenizer.save(os.path.join(folder, "tokenizer.json"))
        from transformers import WhisperFeatureExtractor

        preprocessor = self._preprocessor_config() or {}
        extractor = WhisperFeatureExtractor(  # type: ignore[no-untyped-call]
            **{**preprocessor, "feature_size": self.config["num_mel_bins"]})
        extractor.to_json_file(os.path.join(folder, "preprocessor_config.json"))
        heads_source = fix_alignment_heads(folder, self.config)
        fix_language_ids(folder, tokenizer, self.config["vocab_size"] >= 51865)
        return self._metadata(heads_source)

    def _load_checked_model(self) -> Any:
        import torch
        from transformers import WhisperForConditionalGeneration

        try:
            loaded: Any = WhisperForConditionalGeneration.from_pretrained(
                self.source, output_loading_info=True, dtype=torch.float32)
            model, info = loaded
        except (OSError, RuntimeError, ValueError) as e:
            raise ConversionError(f"cannot load the weights of {self.source}: "
                                  f"{str(e).splitlines()[0][:300]}") from e
        missing = [k for k in info.get("missing_keys", []) if k != "proj_out.weight"]
        mismatched = info.get("mismatched_keys", [])
        if missing or mismatched:
            raise ConversionError(
                f"the weights of {self.source} do not match its config: "
                f"missing {missing[:5]}, mismatched {[m[0] for m in mismatched][:5]}")
        _complete_generation_config(model)
        return model.eval()

    def _metadata(self, alignment_heads_source: str) -> dict[str, Any]:
        from engine.backends.common import library_versions

        c = self.config
        versions = library_versions()
        for name in ("transformers", "torch"):
            versions[name] = _version(name)
        return {
            "source": os.path.abspath(self.source),
            "source_sha256": source_hash(self.source),
            "tokenizer_from": os.path.abspath(self.tokenizer_dir or self.source),
            "quantization": self.quantization,
            "converter": "batchscribe WhisperConverter",
            "versions": versions,
            "n_mels": c["num_mel_bins"],
            "vocab_size": c["vocab_size"],
            "multilingual": c["vocab_size"] >= 51865,
            "encoder_layers": c["encoder_layers"],
            "decoder_layers": c["decoder_layers"],
            "d_model": c["d_model"],
            "alignment_heads": alignment_heads_source,
        }


def _complete_generation_config(model: Any) -> None:
    """Fill what CTranslate2's loader reads but fine-tuned checkpoints often leave empty."""
    gen, config = model.generation_config, model.config
    for attr in ("lang_to_id", "alignment_heads"):
        if getattr(gen, attr, None) is None and attr in gen.__dict__:
            delattr(gen, attr)  # present-but-None crashes the loader; absent means "default"
    if getattr(gen, "suppress_tokens", None) is None:
        gen.suppress_tokens = list(config.suppress_tokens or [])
    if getattr(gen, "begin_suppress_tokens", None) is None:
        gen.begin_suppress_tokens = list(config.begin_suppress_tokens or [220, config.eos_token_id])


def fix_language_ids(folder: str, tokenizer: Any, multilingual: bool) -> None:
    """A multilingual model needs its language token ids (for language detection)."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    path = os.path.join(folder, "config.json")
    with open(path, encoding="utf-8") as f:
        ct2_config = json.load(f)
    if not multilingual or ct2_config.get("lang_ids"):
        return
    vocab = tokenizer.get_vocab()
    ct2_config["lang_ids"] = sorted(vocab[f"<|{code}|>"] for code in _LANGUAGE_CODES
                                    if f"<|{code}|>" in vocab)
    write_json(path, ct2_config)


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _load_tokenizer(folder: str) -> Any:
    from transformers import WhisperTokenizerFast  # type: ignore[attr-defined]

    return WhisperTokenizerFast.from_pretrained(folder)


def _ct2_convert(source: str, model: Any, tokenizer: Any, folder: str, quantization: str) -> None:
    """CTranslate2's converter, handed the model and tokenizer we already loaded and checked."""
    from ctranslate2.converters import TransformersConverter

    class _Loaded(TransformersConverter):  # type: ignore[misc]
        def load_model(self, model_class: Any, name: str, **kwargs: Any) -> Any:
            return model

        def load_tokenizer(self, tokenizer_class: Any, name: str, **kwargs: Any) -> Any:
            return tokenizer

    _Loaded(source).convert(folder, quantization=quantization, force=True)


def default_alignment_heads(decoder_layers: int, heads: int) -> list[list[int]]:
    """CTranslate2's default: every head of the second half of the decoder layers."""
    return [list(p) for p in itertools.product(range(decoder_layers // 2, decoder_layers),
                                                range(heads))]


def fix_alignment_heads(folder: str, config: dict[str, Any]) -> str:
    """Keep the checkpoint's alignment heads when they exist in this decoder, else the default.

    Distilled and fine-tuned checkpoints often carry their teacher's heads, which point at layers
    they do not have; word alignment would crash on them.
    """
    path = os.path.join(folder, "config.json")
    with open(path, encoding="utf-8") as f:
        ct2_config = json.load(f)
    layers, heads = config["decoder_layers"], config["decoder_attention_heads"]
    given = ct2_config.get("alignment_heads") or []
    valid = [h for h in given if 0 <= h[0] < layers and 0 <= h[1] < heads]
    if given and len(valid) == len(given):
        return "checkpoint's generation config"
    ct2_config["alignment_heads"] = default_alignment_heads(layers, heads)
    write_json(path, ct2_config)
    if given:
        return (f"default (second half of the decoder): {len(given) - len(valid)} of the "
                f"checkpoint's {len(given)} heads point outside its {layers}-layer decoder")
    return "default (second half of the decoder): the checkpoint gives none"


def source_hash(source: str) -> str:
    """sha256 of the config and every weight file."""
    digest = hashlib.sha256()
    for path in [os.path.join(source, "config.json"), *weight_files(source)]:
        with open(path, "rb") as f:
            while block := f.read(1 << 22):
                digest.update(block)
    return digest.hexdigest()
