"""Conversion of every Whisper architecture in use, with step-by-step logit parity."""

from __future__ import annotations

import json
import os
import re

import pytest
from checkpoints import ARCHITECTURES, build, trainer_checkpoint

from converters import convert
from converters.parity import check_parity
from engine.config import DecodeConfig, ModelConfig
from engine.decode.runner import ModelRunner
from engine.errors import ConversionError


@pytest.fixture(scope="module")
def converted(work_dir):
    """name -> (checkpoint folder, float32 model folder, metadata), built once."""
    out = {}
    for name in ARCHITECTURES:
        ckpt = build(name, os.path.join(work_dir, "hf", name), work_dir)
        model = os.path.join(work_dir, "ct2", name)
        out[name] = (ckpt.path, model, convert(ckpt.path, model, "float32"))
    return out


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_float32_logits_match_transformers_at_every_step(converted, name) -> None:
    source, model, _ = converted[name]
    report = check_parity(model, source, steps=16)
    print(f"{name}: {report.steps} steps, max |diff| {report.max_abs_diff:.2e}")
    assert report.steps >= 4
    assert report.argmax_agree == report.steps
    assert report.max_abs_diff < 1e-3


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_output_holds_what_the_engine_needs(converted, name) -> None:
    _, model, metadata = converted[name]
    vocab, mels, enc, dec, _ = ARCHITECTURES[name]
    for file in ("model.bin", "config.json", "tokenizer.json", "vocabulary.json",
                 "preprocessor_config.json", "batchscribe_conversion.json"):
        assert os.path.isfile(os.path.join(model, file)), file
    with open(os.path.join(model, "preprocessor_config.json")) as f:
        assert json.load(f)["feature_size"] == mels
    with open(os.path.join(model, "config.json")) as f:
        config = json.load(f)
    assert all(0 <= layer < dec and 0 <= head < 4 for layer, head in config["alignment_heads"])
    assert (metadata["n_mels"], metadata["vocab_size"], metadata["decoder_layers"]) == (
        mels, vocab, dec)
    assert len(metadata["source_sha256"]) == 64 and metadata["versions"]["transformers"]
    runner = ModelRunner(ModelConfig(path=model, device="cpu", compute_type="float32"),
                         DecodeConfig())
    assert runner.n_mels == mels and runner.is_multilingual == (vocab >= 51865)
    if vocab >= 51865:
        assert len(config["lang_ids"]) == (100 if vocab == 51866 else 99)


@pytest.mark.parametrize("quantization", ["int8", "float16", "bfloat16"])
def test_quantized_models_load_and_decode(converted, work_dir, quantization) -> None:
    source, _, _ = converted["large-v3"]
    model = os.path.join(work_dir, f"large-v3-{quantization}")
    convert(source, model, quantization)
    compute = "int8" if quantization == "int8" else "float32"
    report = check_parity(model, source, compute_type=compute)
    print(f"{quantization}: {report.argmax_agree}/{report.steps} same argmax, "
          f"max |diff| {report.max_abs_diff:.3f}")
    assert report.steps > 0
    assert os.path.getsize(os.path.join(model, "model.bin")) < os.path.getsize(
        os.path.join(converted["large-v3"][1], "model.bin"))


def test_distilled_teacher_alignment_heads_are_replaced(work_dir) -> None:
    ckpt = build("distil-large-v3", os.path.join(work_dir, "hf", "distil-bad-heads"), work_dir,
                 bad_alignment_heads=True)
    model = os.path.join(work_dir, "ct2", "distil-bad-heads")
    metadata = convert(ckpt.path, model, "float32")
    assert "point outside its 2-layer decoder" in metadata["alignment_heads"]
    with open(os.path.join(model, "config.json")) as f:
        assert json.load(f)["alignment_heads"] == [[1, h] for h in range(4)]


def test_trainer_checkpoint_takes_the_tokenizer_of_its_run_folder(work_dir) -> None:
    ckpt = trainer_checkpoint(os.path.join(work_dir, "run"), work_dir)
    assert not os.path.exists(os.path.join(ckpt.path, "tokenizer.json"))
    model = os.path.join(work_dir, "ct2", "checkpoint")
    metadata = convert(ckpt.path, model, "float32")
    assert metadata["tokenizer_from"] == os.path.join(work_dir, "run")
    report = check_parity(model, ckpt.path)
    assert report.argmax_agree == report.steps and report.max_abs_diff < 1e-3


def test_checkpoint_without_any_tokenizer_names_what_is_missing(work_dir, tmp_path) -> None:
    ckpt = trainer_checkpoint(os.path.join(work_dir, "run2"), work_dir)
    lonely = tmp_path / "somewhere" / "checkpoint-9"
    lonely.parent.mkdir()
    os.rename(ckpt.path, lonely)
    with pytest.raises(ConversionError, match="no tokenizer: tokenizer.json .* is missing"):
        convert(str(lonely), str(tmp_path / "out"), "int8")
    assert not (tmp_path / "out").exists()
    metadata = convert(str(lonely), str(tmp_path / "out"), "int8",
                       tokenizer_from=os.path.join(work_dir, "run2"))
    assert metadata["tokenizer_from"] == os.path.join(work_dir, "run2")


def test_not_whisper_fails_before_writing(tmp_path) -> None:
    source = tmp_path / "bert"
    source.mkdir()
    (source / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ConversionError, match="bert checkpoint; no converter .* whisper"):
        convert(str(source), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_weights_that_do_not_match_the_config_are_named(work_dir, tmp_path) -> None:
    import shutil

    source = tmp_path / "mismatch"
    shutil.copytree(os.path.join(work_dir, "hf", "tiny"), source)
    config = json.loads((source / "config.json").read_text())
    config.update(d_model=128, decoder_layers=3)
    (source / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionError) as error:
        convert(str(source), str(tmp_path / "out"))
    message = str(error.value)
    assert "encoder.conv1.weight has shape [64, 80, 3], the config implies [128, 80, 3]" in message
    assert "the weights hold 2 decoder layers, the config says 3" in message
    assert not (tmp_path / "out").exists()


def test_existing_output_is_refused_unless_forced(converted, tmp_path) -> None:
    source, _, _ = converted["tiny"]
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConversionError, match="already exists"):
        convert(source, str(out), "int8")
    assert (out / "keep.txt").exists()
    convert(source, str(out), "int8", force=True)
    assert not (out / "keep.txt").exists() and (out / "model.bin").exists()


def test_interrupted_conversion_leaves_no_half_model(converted, tmp_path, monkeypatch) -> None:
    import converters.whisper as whisper

    source, _, _ = converted["tiny"]

    def crash(*args, **kwargs):
        with open(os.path.join(args[3], "model.bin"), "wb") as f:
            f.write(b"half a model")
        raise KeyboardInterrupt

    monkeypatch.setattr(whisper, "_ct2_convert", crash)
    with pytest.raises(KeyboardInterrupt):
        convert(source, str(tmp_path / "out"), "int8")
    assert os.listdir(tmp_path) == []


def test_hub_id_offline_fails_with_a_clear_message(tmp_path) -> None:
    with pytest.raises(ConversionError, match="could not be downloaded from the Hugging Face Hub"):
        convert("openai/whisper-tiny-not-here", str(tmp_path / "out"))


@pytest.mark.parametrize("name", ["tiny", "large-v3"])
def test_converted_models_run_through_batchscribe_transcribe(converted, name, tmp_path, clips,
                                                              write_manifest) -> None:
    """Random weights give meaningless words: this checks the run, the schema and the mel bins."""
    import pyarrow.dataset as ds
    from click.testing import CliRunner

    from engine.cli import cli

    _, model, metadata = converted[name]
    manifest = write_manifest({"id": ["clip"], "path": [clips[0]["path"]]})
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["transcribe", manifest, "-o", str(out), "--model", model,
                                      "--beam-size", "1", "-j", "0", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model"]["n_mels"] == metadata["n_mels"]
    assert report["model"]["multilingual"] is True
    (row,) = ds.dataset(str(out), format="parquet", exclude_invalid_files=True).to_table(
    ).to_pylist()
    assert row["status"] in ("ok", "empty") and row["language"]
    assert 0 < row["language_probability"] <= 1
    assert all(0 <= s["start_s"] <= s["end_s"] for s in row["segments"])


def test_cli_verify_prints_parity_as_a_sentence(converted, tmp_path) -> None:
    # issue 28: it printed the parity dict, `parity: {'check': ..., 'steps': ...}`
    from click.testing import CliRunner

    from engine.cli import cli

    source, _, _ = converted[next(iter(ARCHITECTURES))]
    result = CliRunner().invoke(cli, ["convert", source, str(tmp_path / "out"),
                                      "--quantization", "float32", "--verify"])
    assert result.exit_code == 0, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"parity passed: (\d+) of \1 greedy steps chose the same token and the "
                        r"largest logit difference [0-9.e-]+ \(at most 1e-3 needed, float32 "
                        r"against the checkpoint\)", line), line
