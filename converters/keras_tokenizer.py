"""A KerasHub `WhisperTokenizer`'s saved assets -> the Hugging Face tokenizer a model ships with.

KerasHub saves the byte-level BPE vocabulary and merges under `assets/tokenizer/`, and in
`tokenizer.json` the ids of the special tokens (and of the language tokens, for multilingual
models). Whisper's full vocabulary also holds the tokens KerasHub leaves out (the language tokens
of English-only models, `<|startoflm|>`, `<|nocaptions|>`, the 1501 timestamps): they are filled in
at the ids of OpenAI's layout, and every id of the model's vocabulary must end up with exactly one
token.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any

from engine.errors import ConversionError

# Whisper's language tokens, in id order (large-v3 adds "yue" after them)
LANGUAGES = (
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv",
    "it", "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no",
    "th", "ur", "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr",
    "az", "sl", "kn", "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw",
    "gl", "mr", "pa", "si", "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu",
    "am", "yi", "lo", "uz", "fo", "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl",
    "mg", "as", "tt", "haw", "ln", "ha", "ba", "jw", "su", "yue",
)
REQUIRED = ("<|endoftext|>", "<|startoftranscript|>", "<|translate|>", "<|transcribe|>",
            "<|notimestamps|>")


@dataclass(frozen=True)
class TokenizerAssets:
    vocabulary: dict[str, int]
    merges: list[str]
    special: dict[str, int]  # every added token (special, language, timestamp) -> id
    timestamps_from: int  # the id of <|0.00|>
    folder: str


def _load_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_tokenizer_assets(folder: str, vocab_size: int) -> TokenizerAssets:
    """The tokenizer of a KerasHub preset folder, completed to `vocab_size` ids.

    Raises:
        ConversionError: no tokenizer assets, or ids that do not fit Whisper's layout.
    """
    assets = os.path.join(folder, "assets", "tokenizer")
    config_path = os.path.join(folder, "tokenizer.json")
    paths = [os.path.join(assets, "vocabulary.json"), os.path.join(assets, "merges.txt"),
             config_path]
    if not all(os.path.isfile(p) for p in paths):
        raise ConversionError(
            f"no tokenizer: {folder} lacks tokenizer.json or assets/tokenizer/"
            "{vocabulary.json,merges.txt} (a backbone-only preset); give the folder of a "
            "Whisper tokenizer (a KerasHub WhisperTokenizer preset or a Hugging Face one)")
    config = _load_json(config_path)
    if config.get("class_name") != "WhisperTokenizer":
        raise ConversionError(f"{config_path} is a {config.get('class_name')}, not a "
                              "WhisperTokenizer")
    given = {**(config["config"].get("language_tokens") or {}),
             **config["config"]["special_tokens"]}
    missing = [t for t in REQUIRED if t not in given]
    if missing:
        raise ConversionError(f"{config_path} lacks the special tokens {', '.join(missing)}")
    with open(paths[1], encoding="utf-8") as f:
        merges = [line.rstrip("\n") for line in f if line.strip() and not line.startswith("#")]
    vocabulary = {t: i for t, i in _load_json(paths[0]).items() if t not in given}
    special = complete_layout(given, vocab_size)
    _check_ids(vocabulary, special, vocab_size, folder)
    return TokenizerAssets(vocabulary, merges, special, given["<|notimestamps|>"] + 1, folder)


def complete_layout(given: dict[str, int], vocab_size: int) -> dict[str, int]:
    """The given special ids plus the tokens OpenAI's layout puts around them."""
    sot, translate = given["<|startoftranscript|>"], given["<|translate|>"]
    notimestamps = given["<|notimestamps|>"]
    taken = set(given.values())
    filled = dict(given)
    languages = iter(c for c in LANGUAGES if f"<|{c}|>" not in given)
    for token_id in range(sot + 1, translate):
        if token_id not in taken:
            filled[f"<|{next(languages, f'lang{token_id}')}|>"] = token_id
    multilingual = vocab_size >= 51865
    standard = {translate + 2: "<|startoflm|>", translate + 3: "<|startofprev|>",
                translate + 4: "<|nospeech|>" if multilingual else "<|nocaptions|>"}
    for token_id, name in standard.items():
        if token_id not in taken and token_id < notimestamps and name not in filled:
            filled[name] = token_id
    for i, token_id in enumerate(range(notimestamps + 1, vocab_size)):
        filled[f"<|{i * 0.02:.2f}|>"] = token_id
    return filled


def _check_ids(vocabulary: dict[str, int], special: dict[str, int], vocab_size: int,
               folder: str) -> None:
    by_id: dict[int, list[str]] = {}
    for token, token_id in [*vocabulary.items(), *special.items()]:
        by_id.setdefault(token_id, []).append(token)
    clashes = {i: t for i, t in by_id.items() if len(t) > 1}
    holes = [i for i in range(vocab_size) if i not in by_id]
    beyond = sorted(i for i in by_id if not 0 <= i < vocab_size)
    if clashes:
        token_id, tokens = next(iter(sorted(clashes.items())))
        raise ConversionError(f"the tokenizer in {folder} gives id {token_id} to "
                              f"{' and '.join(tokens)} ({len(clashes)} such ids)")
    if holes or beyond:
        raise ConversionError(
            f"the tokenizer in {folder} does not fit the model's vocabulary of {vocab_size}: "
            + (f"ids {holes[0]}..{holes[-1]} have no token ({len(holes)} ids)" if holes else
               f"ids {beyond[0]}..{beyond[-1]} are beyond it"))


def build_tokenizer(assets: TokenizerAssets) -> Any:
    """A `WhisperTokenizerFast` whose ids are the preset's, every id of the model named."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import WhisperTokenizerFast  # type: ignore[attr-defined]

    merges = [(a, b) for a, _, b in (m.partition(" ") for m in assets.merges)]
    tokenizer = Tokenizer(models.BPE(vocab=assets.vocabulary, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    ordered = sorted(assets.special.items(), key=lambda item: item[1])
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                  for t, i in ordered if i < assets.timestamps_from])
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=True)
                          for t, i in ordered if i >= assets.timestamps_from])
    wrong = [(t, i) for t, i in ordered if tokenizer.token_to_id(t) != i]
    if wrong:
        token, token_id = wrong[0]
        raise ConversionError(f"the tokenizer in {assets.folder}: {token} should have id "
                              f"{token_id}, it got {tokenizer.token_to_id(token)}")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tokenizer.json")
        tokenizer.save(path)
        eot = "<|endoftext|>"
        return WhisperTokenizerFast(tokenizer_file=path, unk_token=eot, bos_token=eot,
                                    eos_token=eot, pad_token=eot)
