"""The PyTorch encoder (engine/decode/torch_encoder.py) against CTranslate2's own, on the CPU:
the real tiny.en model (float16 folder), random checkpoints converted to int8 and float16 by our
converter, and a whole `batchscribe transcribe` run with --encoder torch."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ctranslate2 = pytest.importorskip("ctranslate2")

from engine.decode.ct2_weights import read_variables  # noqa: E402
from engine.decode.torch_encoder import load_encoder, storage_view  # noqa: E402
from engine.errors import ModelLoadError  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "converters"))

PROMPT = [50257, 50362]  # tiny.en: <|startoftranscript|>, <|notimestamps|>


def features_of(paths: list[str], n_mels: int = 80) -> np.ndarray:
    from engine.prepare.audio import decode
    from engine.prepare.features import FeatureComputer
    from engine.types import AudioItem

    compute = FeatureComputer(n_mels)
    return np.stack([compute(decode(AudioItem(item_id=p, path=p))[: 30 * 16000]) for p in paths])


def both_encoders(folder: str, features: np.ndarray) -> tuple[Any, np.ndarray, Any]:
    """(CTranslate2 model at float32, its encoder output, ours as a CPU tensor)."""
    model = ctranslate2.models.Whisper(folder, device="cpu", compute_type="float32")
    theirs = np.asarray(model.encode(ctranslate2.StorageView.from_array(features), to_cpu=True))
    with torch.inference_mode():
        ours = load_encoder(folder)(torch.from_numpy(features)).contiguous()
    return model, theirs, ours


def test_reader_reads_the_float16_folder(model_path: str) -> None:
    encoder = read_variables(model_path, prefix="encoder/")
    assert int(encoder["encoder/num_heads"]) == 6
    assert encoder["encoder/conv1/weight"].shape == (384, 80, 3)
    assert encoder["encoder/layer_3/self_attention/linear_0/weight"].shape == (1152, 384)
    assert "encoder/layer_4/ffn/linear_0/weight" not in encoder
    assert all(v.dtype == np.float16 for k, v in encoder.items() if not k.endswith("num_heads"))
    decoder = read_variables(model_path, prefix="decoder/embeddings")
    assert list(decoder) == ["decoder/embeddings/weight"]
    assert decoder["decoder/embeddings/weight"].shape == (51864, 384)


def test_auto_keeps_ctranslate2_for_narrow_encoders_and_on_cpu(model_path: str) -> None:
    from engine.config import ModelConfig
    from engine.decode.ct2_weights import encoder_shape
    from engine.decode.plan import AUTO_TORCH_WIDTH, wants_torch_encoder

    width, n_mels = encoder_shape(model_path)
    assert (width, n_mels) == (384, 80)
    assert not wants_torch_encoder(ModelConfig(encoder="auto"), width, "cuda")
    assert not wants_torch_encoder(ModelConfig(encoder="auto"), AUTO_TORCH_WIDTH, "cpu")
    assert not wants_torch_encoder(ModelConfig(encoder="auto", device_index=(0, 1)),
                                   AUTO_TORCH_WIDTH, "cuda")
    assert not wants_torch_encoder(ModelConfig(encoder="ctranslate2"), width, "cpu")
    assert wants_torch_encoder(ModelConfig(encoder="torch"), width, "cpu")


def test_reader_refuses_a_truncated_file(model_path: str, tmp_path: Any) -> None:
    with open(os.path.join(model_path, "model.bin"), "rb") as f:
        (tmp_path / "model.bin").write_bytes(f.read(50_000))
    with pytest.raises(ModelLoadError, match="truncated"):
        read_variables(str(tmp_path))


def test_torch_encoder_matches_ctranslate2_on_tiny_en(model_path: str,
                                                      clips: list[dict[str, str]]) -> None:
    features = features_of([c["path"] for c in clips[:2]])
    model, theirs, ours = both_encoders(model_path, features)
    assert tuple(ours.shape) == theirs.shape == (2, 1500, 384)
    diff = float(np.abs(ours.numpy() - theirs).max())
    print(f"tiny.en float16 folder, float32 on CPU: max abs diff {diff:.2e} "
          f"(largest output {np.abs(theirs).max():.1f})")
    assert diff < 2e-3
    expected = model.generate(ctranslate2.StorageView.from_array(features), [PROMPT] * 2,
                              beam_size=1)
    got = model.generate(storage_view(ours), [PROMPT] * 2, beam_size=1)
    texts = [r.sequences_ids[0] for r in got]
    assert texts == [r.sequences_ids[0] for r in expected]
    assert all(len(t) > 5 for t in texts)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: Any) -> str:
    """A random distil-small.en-shaped Hugging Face checkpoint (tiny dimensions)."""
    from checkpoints import build

    work = tmp_path_factory.mktemp("checkpoint")
    return build("distil-small.en", str(work / "hf"), str(work)).path


@pytest.mark.parametrize("quantization", ["int8", "float16"])
def test_torch_encoder_reads_converted_folders(quantization: str, checkpoint: str, tmp_path: Any,
                                               clips: list[dict[str, str]]) -> None:
    from converters import convert

    folder = str(tmp_path / quantization)
    convert(checkpoint, folder, quantization=quantization)
    variables = read_variables(folder, prefix="encoder/layer_0/ffn/linear_0/weight")
    assert list(variables) == ["encoder/layer_0/ffn/linear_0/weight"]  # the scale is consumed
    features = features_of([clips[0]["path"]])
    _, theirs, ours = both_encoders(folder, features)
    diff = float(np.abs(ours.numpy() - theirs).max())
    print(f"{quantization} folder: max abs diff {diff:.2e} (largest {np.abs(theirs).max():.1f})")
    assert diff < 1e-3 * max(1.0, float(np.abs(theirs).max()))


def test_transcribe_with_the_torch_encoder(model_path: str, clips: list[dict[str, str]],
                                           write_manifest: Any, tmp_path: Any,
                                           read_rows: Any) -> None:
    from click.testing import CliRunner

    from engine.cli import cli

    manifest = write_manifest({"id": [c["id"] for c in clips[:2]],
                               "path": [c["path"] for c in clips[:2]]})
    texts = {}
    for encoder in ("ctranslate2", "torch"):
        out = str(tmp_path / encoder)
        result = CliRunner().invoke(cli, ["transcribe", manifest, "-o", out, "--device", "cpu",
                                           "--compute-type", "float32", "--encoder", encoder,
                                           "--beam-size", "1", "-j", "0", "-q"])
        assert result.exit_code == 0, result.output
        texts[encoder] = {k: r["text"] for k, r in read_rows(out).items()}
        runs = os.path.join(out, ".batchscribe", "runs")
        with open(os.path.join(runs, sorted(os.listdir(runs))[-1]), encoding="utf-8") as f:
            assert json.load(f)["model"]["encoder"] == encoder
    assert texts["torch"] == texts["ctranslate2"]
    assert all(len(t) > 10 for t in texts["torch"].values())
