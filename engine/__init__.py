"""batchscribe's engine: public API only.

    from engine import TranscribeConfig, transcribe
    report = transcribe(TranscribeConfig(manifest="m.parquet", output="out/"))
"""

from engine.backends import transcribe
from engine.config import (
    BatchConfig,
    DecodeConfig,
    ModelConfig,
    RunConfig,
    TranscribeConfig,
    VadConfig,
)
from engine.errors import (
    AudioDecodeError,
    ConfigError,
    ConversionError,
    EngineError,
    ManifestError,
    ModelLoadError,
    OutputError,
    TooManyErrors,
)

__all__ = [
    "AudioDecodeError", "BatchConfig", "ConfigError", "ConversionError", "DecodeConfig",
    "EngineError", "ManifestError", "ModelConfig", "ModelLoadError", "OutputError", "RunConfig",
    "TooManyErrors", "TranscribeConfig", "VadConfig", "transcribe",
]
