"""Checkpoint -> CTranslate2 conversion: `convert(source, output, quantization)`.

Needs the `convert` extra (transformers, torch); the engine itself does not.
"""

from __future__ import annotations

import os
from typing import Any

from converters.base import QUANTIZATIONS, Converter
from converters.registry import converter_for
from engine.errors import ConversionError

__all__ = ["QUANTIZATIONS", "Converter", "convert"]


def convert(source: str, output: str, quantization: str = "float16", force: bool = False,
            tokenizer_from: str | None = None) -> dict[str, Any]:
    """Convert a Hugging Face checkpoint or KerasHub preset folder into a CTranslate2 model.

    Returns:
        The conversion metadata (also written as batchscribe_conversion.json).

    Raises:
        ConversionError: the source is not a convertible checkpoint, the output exists, or the
            conversion libraries are missing.
    """
    try:
        import ctranslate2  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        raise ConversionError(
            f"conversion needs {e.name}: install the CPU build of torch first (pip install "
            "torch --index-url https://download.pytorch.org/whl/cpu; a plain pip install torch "
            "pulls about 3 GB of CUDA packages), then pip install 'batchscribe[convert]'") from e
    import converters.keras_hub  # noqa: F401  (registers the KerasHub Whisper converter)
    import converters.whisper  # noqa: F401  (registers the Whisper converter)
    from converters.keras_hub import keras_preset_type
    from converters.whisper import read_config

    folder = resolve_source(source)
    config = read_config(folder)
    model_type = config.get("model_type") or keras_preset_type(config)
    cls = converter_for(model_type, folder)
    converter: Converter = cls(folder, quantization, tokenizer_from)
    return converter.convert(output, force=force)


def resolve_source(source: str) -> str:
    """A local checkpoint folder: the source itself, or a Hub repository downloaded (online)."""
    if os.path.isdir(source):
        return source
    if os.path.exists(source):
        raise ConversionError(f"{source} is a file; give the checkpoint's folder")
    if source.count("/") != 1 or source.startswith((".", "/")):
        raise ConversionError(f"{source} does not exist")
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
    try:
        from huggingface_hub import snapshot_download

        return str(snapshot_download(source, allow_patterns=[
            "*.json", "*.safetensors", "*.bin", "*.txt", "*.model"]))
    except Exception as e:
        raise ConversionError(
            f"{source} is not a local folder and could not be downloaded from the Hugging Face "
            f"Hub (offline, or no such repository): {str(e).splitlines()[0][:160]}") from e
