"""The exception tree. Item-level failures carry the item's id; the rest abort the run."""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error batchscribe raises on purpose."""


class ConfigError(EngineError):
    """An option or job setting is invalid."""


class ManifestError(EngineError):
    """The manifest cannot be read or breaks the schema."""


class ModelLoadError(EngineError):
    """The model folder is missing, not a CTranslate2 Whisper model, or cannot be loaded."""


class OutputError(EngineError):
    """The output folder cannot be used."""


class ConversionError(EngineError):
    """A checkpoint cannot be converted."""


class TooManyErrors(EngineError):
    """The run stopped because more items failed than the error budget allows."""


class ItemFailure(EngineError):
    """One item failed; it becomes an error row and the run goes on."""

    stage = "item"
    transient = False  # True: the cause may go away (network, storage); a rerun tries again

    def __init__(self, item_id: str, message: str) -> None:
        super().__init__(message)
        self.item_id = item_id


class AudioDecodeError(ItemFailure):
    """The audio of one item cannot be decoded."""

    stage = "decode"


class StorageReadError(ItemFailure):
    """An item's audio could not be read from its store (network, server) after retries."""

    stage = "read"
    transient = True
