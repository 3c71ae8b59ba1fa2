"""Which converter handles which checkpoint: a registry keyed by the config's `model_type`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from engine.errors import ConversionError

T = TypeVar("T")
_CONVERTERS: dict[str, type] = {}


def register_converter(model_type: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: the converter for checkpoints whose config says `model_type`."""

    def register(cls: type[T]) -> type[T]:
        _CONVERTERS[model_type] = cls
        return cls

    return register


def converter_for(model_type: str | None, source: str) -> type:
    if model_type not in _CONVERTERS:
        raise ConversionError(
            f"{source} is a {model_type or 'unknown'!s} checkpoint; no converter is registered for "
            f"it (supported model types: {', '.join(sorted(_CONVERTERS))})")
    return _CONVERTERS[model_type]
