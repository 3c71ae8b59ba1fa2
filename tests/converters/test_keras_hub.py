"""KerasHub WhisperBackbone presets -> CTranslate2: parity with Keras, tokenizer ids, errors."""

from __future__ import annotations

import json
import os
import shutil

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")  # CPU; keras's default (tensorflow) is not needed
pytest.importorskip("keras_hub", reason="pip install 'batchscribe[keras]' && "
                    "pip install --no-deps keras-hub")

from checkpoints import tokenizer_file  # noqa: E402
from keras_presets import PRESETS, build_preset, keras_tokenizer  # noqa: E402

from converters import convert  # noqa: E402
from converters.parity import check_parity  # noqa: E402
from engine.config import DecodeConfig, ModelConfig  # noqa: E402
from engine.decode.runner import ModelRunner  # noqa: E402
from engine.errors import ConversionError  # noqa: E402


@pytest.fixture(scope="module")
def presets(work_dir):
    """name -> (preset folder, float32 model folder, metadata), built once."""
    out = {}
    for seed, name in enumerate(PRESETS):
        preset = build_preset(name, os.path.join(work_dir, "keras", name), work_dir, seed=seed)
        model = os.path.join(work_dir, "ct2-keras", name)
        out[name] = (preset, model, convert(preset, model, "float32"))
    return out


@pytest.mark.parametrize("name", list(PRESETS))
def test_float32_logits_match_keras_at_every_step(presets, name) -> None:
    preset, model, _ = presets[name]
    report = check_parity(model, preset, steps=16)
    print(f"{name}: {report.steps} steps, max |diff| {report.max_abs_diff:.2e}")
    assert report.steps >= 4
    assert report.argmax_agree == report.steps
    assert report.max_abs_diff < 1e-3


@pytest.mark.parametrize("name", list(PRESETS))
def test_output_holds_what_the_engine_needs(presets, name) -> None:
    _, model, metadata = presets[name]
    vocab, mels, layers, _ = PRESETS[name]
    for file in ("model.bin", "config.json", "tokenizer.json", "vocabulary.json",
                 "preprocessor_config.json", "batchscribe_conversion.json"):
        assert os.path.isfile(os.path.join(model, file)), file
    with open(os.path.join(model, "preprocessor_config.json")) as f:
        assert json.load(f)["feature_size"] == mels
    with open(os.path.join(model, "config.json")) as f:
        config = json.load(f)
    heads = config["alignment_heads"]
    assert heads and all(layers // 2 <= layer < layers and 0 <= head < 4 for layer, head in heads)
    assert 220 in config["suppress_ids_begin"] and len(config["suppress_ids"]) > 50
    assert (metadata["n_mels"], metadata["vocab_size"], metadata["decoder_layers"]) == (
        mels, vocab, layers)
    assert metadata["source_format"] == "keras_hub.WhisperBackbone preset"
    runner = ModelRunner(ModelConfig(path=model, device="cpu", compute_type="float32"),
                         DecodeConfig())
    assert runner.n_mels == mels and runner.is_multilingual == (vocab >= 51865)
    if vocab >= 51865:
        assert len(config["lang_ids"]) == (100 if vocab == 51866 else 99)


@pytest.mark.parametrize("name", ["whisper_tiny_en", "whisper_base_multi", "large-v3-shaped"])
def test_tokenizer_gives_every_token_whisper_s_id(presets, work_dir, name) -> None:
    """The built tokenizer.json agrees with the real Hugging Face tokenizer on every id, and
    names the timestamps up to the end of the vocabulary."""
    _, model, _ = presets[name]
    vocab, _, _, kind = PRESETS[name]
    with open(tokenizer_file(kind, work_dir), encoding="utf-8") as f:
        real = json.load(f)
    with open(os.path.join(model, "tokenizer.json"), encoding="utf-8") as f:
        built = json.load(f)
    ids = {**built["model"]["vocab"], **{t["content"]: t["id"] for t in built["added_tokens"]}}
    expected = {**real["model"]["vocab"], **{t["content"]: t["id"] for t in real["added_tokens"]}}
    expected.pop("<|iw|>", None)  # tiny.en's Hugging Face tokenizer calls Hebrew `iw`, not `he`
    assert {t: ids.get(t) for t in expected} == expected
    assert sorted(ids.values()) == list(range(vocab))
    notimestamps = ids["<|notimestamps|>"]
    assert ids["<|0.00|>"] == notimestamps + 1 and ids["<|30.00|>"] == vocab - 1
    from faster_whisper.tokenizer import Tokenizer
    from tokenizers import Tokenizer as HFTokenizer

    tokenizer = Tokenizer(HFTokenizer.from_file(os.path.join(model, "tokenizer.json")),
                          vocab >= 51865, task="transcribe", language="en")
    text = " Ask not what your country can do for you, 1961."
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_backbone_only_preset_takes_the_tokenizer_from_another_folder(work_dir, tmp_path) -> None:
    preset = build_preset("whisper_tiny_en", str(tmp_path / "backbone"), work_dir,
                          with_tokenizer=False, seed=7)
    with pytest.raises(ConversionError, match="no tokenizer: .* backbone-only preset"):
        convert(preset, str(tmp_path / "out"), "float32")
    assert not (tmp_path / "out").exists()
    tok = str(tmp_path / "tok")
    keras_tokenizer("en", work_dir).save_to_preset(tok)  # type: ignore[attr-defined]
    metadata = convert(preset, str(tmp_path / "out"), "float32", tokenizer_from=tok)
    assert metadata["tokenizer_from"] == tok
    report = check_parity(str(tmp_path / "out"), preset)
    assert report.argmax_agree == report.steps and report.max_abs_diff < 1e-3
    # a Hugging Face tokenizer folder serves as well
    hf_tokenizer = os.path.dirname(tokenizer_file("en", work_dir))
    convert(preset, str(tmp_path / "out-hf"), "int8", tokenizer_from=hf_tokenizer)
    assert os.path.isfile(tmp_path / "out-hf" / "model.bin")


def _copy(presets, tmp_path, name="whisper_base_multi"):
    source = tmp_path / "preset"
    shutil.copytree(presets[name][0], source)
    return source


def test_missing_weights_file_fails_before_writing(presets, tmp_path) -> None:
    source = _copy(presets, tmp_path)
    (source / "model.weights.h5").unlink()
    with pytest.raises(ConversionError) as error:
        convert(str(source), str(tmp_path / "out"))
    assert "no weights: model.weights.h5 is missing" in str(error.value)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


def test_shapes_that_disagree_with_config_json_are_named(presets, tmp_path) -> None:
    source = _copy(presets, tmp_path)
    config = json.loads((source / "config.json").read_text())
    config["config"].update(hidden_dim=128, num_layers=3)
    (source / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionError) as error:
        convert(str(source), str(tmp_path / "out"))
    message = str(error.value)
    assert "weight layers/conv1d/vars/0 has shape [3, 80, 64], config.json implies [3, 80, 128]" \
        in message
    assert "the weights hold 2 decoder layers, config.json says 3" in message
    assert "\n" not in message and not (tmp_path / "out").exists()


def test_preset_of_another_model_family_is_refused(tmp_path) -> None:
    source = tmp_path / "bert"
    source.mkdir()
    (source / "config.json").write_text(json.dumps({
        "module": "keras_hub.src.models.bert.bert_backbone", "class_name": "BertBackbone",
        "config": {"vocabulary_size": 30522}, "registered_name": "keras_hub>BertBackbone"}))
    with pytest.raises(ConversionError,
                       match=r"keras_hub.BertBackbone checkpoint; no converter .*"
                             r"keras_hub.WhisperBackbone, whisper"):
        convert(str(source), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_cli_converts_a_preset_and_verifies_it_against_keras(presets, tmp_path) -> None:
    from click.testing import CliRunner

    from engine.cli import cli

    preset, _, _ = presets["whisper_tiny_en"]
    result = CliRunner().invoke(cli, ["convert", preset, str(tmp_path / "out"), "--quantization",
                                      "float32", "--verify", "--json"])
    assert result.exit_code == 0, result.output
    metadata = json.loads(result.stdout)
    assert metadata["parity"]["passed"] and metadata["parity"]["steps"] >= 4
    assert metadata["converter"] == "batchscribe KerasWhisperConverter"
