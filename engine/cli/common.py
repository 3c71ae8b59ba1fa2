"""What the commands share: the one-line error for a library error, and flag hints."""

from __future__ import annotations

from typing import Any

import click


def failure(message: str) -> click.ClickException:
    """The one-line error (exit 1) for a library error, without secrets of the URIs it names
    (a library's own message, such as fsspec's, may repeat a URI whole)."""
    from engine.io.storage import redact

    return click.ClickException(redact(message))


def with_flag_hints(message: str) -> str:
    """Library messages name no flags; the CLI adds the flag that fixes the problem."""
    if "error budget" in message:
        return message + " (raise --max-errors to go on)"
    if "passthrough column" in message:
        return message + " (check --passthrough)"
    if "give the folder that holds it" in message:
        return message + " (--tokenizer-from)"
    if "overwrite it" in message:
        return message + " (--force)"
    if "allow mixed settings" in message:
        return message + " (--allow-mixed)"
    if "pass the manifest that holds it" in message:
        return message + " (--manifest)"
    return message


HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
              "pytorch_model.bin.index.json", "tf_model.h5", "model.weights.h5")


def model_hint(message: str, model: str | None) -> str:
    """A Hugging Face (or KerasHub) checkpoint given as the model: name the command that
    converts it, instead of listing the CTranslate2 files it lacks."""
    import os

    if model is None or "is not a CTranslate2 Whisper model folder" not in message \
            or not any(os.path.isfile(os.path.join(model, n)) for n in HF_WEIGHTS):
        return message
    return (f"{model} is a Hugging Face checkpoint, not a CTranslate2 model: convert it first "
            f"(batchscribe convert {model} {model.rstrip('/')}-ct2) and pass the converted "
            "folder as --model")


def counter(enabled: bool, unit: str) -> Any:
    from tqdm import tqdm

    return tqdm(disable=not enabled, unit=unit, dynamic_ncols=True)
