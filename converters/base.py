"""The conversion template: check -> load -> validate -> convert (temporary folder) -> rename.

Nothing is written at the output path until the model is complete: the work happens in a hidden
sibling folder that is renamed into place at the end, and removed on any failure.
"""

from __future__ import annotations

import json
import os
import shutil
from abc import ABC, abstractmethod
from typing import Any

from engine.errors import ConversionError

QUANTIZATIONS = ("int8", "int8_float16", "int8_bfloat16", "float16", "bfloat16", "float32")


class Converter(ABC):
    """Subclasses load and check a checkpoint and write a model into a given folder."""

    def __init__(self, source: str, quantization: str, tokenizer_from: str | None = None) -> None:
        if quantization not in QUANTIZATIONS:
            raise ConversionError(f"quantization {quantization!r} is not one of: "
                                  f"{', '.join(QUANTIZATIONS)}")
        self.source = source
        self.quantization = quantization
        self.tokenizer_from = tokenizer_from

    @abstractmethod
    def problems(self) -> list[str]:
        """Everything wrong with the source, all at once (empty when it can be converted)."""

    @abstractmethod
    def write(self, folder: str) -> dict[str, Any]:
        """Write the converted model into `folder`; return its metadata."""

    def convert(self, output: str, force: bool = False) -> dict[str, Any]:
        """Convert into `output`, atomically.

        Raises:
            ConversionError: `output` exists (without `force`), or the source cannot be converted.
        """
        output = os.path.abspath(output)
        if os.path.exists(output) and not force:
            raise ConversionError(f"{output} already exists; choose another folder or overwrite it")
        found = self.problems()
        if found:
            raise ConversionError(f"cannot convert {self.source}: " + "; ".join(found))
        parent, name = os.path.split(output)
        os.makedirs(parent, exist_ok=True)
        partial = os.path.join(parent, f".{name}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            os.makedirs(partial)
            metadata = self.write(partial)
            write_json(os.path.join(partial, "batchscribe_conversion.json"), metadata)
            _replace_folder(partial, output)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return metadata


def _replace_folder(new: str, target: str) -> None:
    if not os.path.exists(target):
        os.rename(new, target)
        return
    old = f"{new}.old"
    os.rename(target, old)
    os.rename(new, target)
    shutil.rmtree(old, ignore_errors=True)


def write_json(path: str, payload: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
        f.write("\n")
