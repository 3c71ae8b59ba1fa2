"""The model plan: what a run's model will be, read from the folder before its weights load."""

from __future__ import annotations

import pytest

from engine.config import ModelConfig
from engine.decode.plan import plan_model
from engine.errors import ModelLoadError


def test_the_plan_reads_the_encoder_shape_and_picks_the_cpu_path(model_path: str) -> None:
    plan = plan_model(ModelConfig(path=model_path, device="auto"))
    assert (plan.width, plan.n_mels) == (384, 80)  # tiny.en
    assert plan.device == "cpu" and plan.compute_type == "int8"  # no GPU here
    assert not plan.torch_encoder and not plan.features_on_device
    assert plan.replicas >= 1 and plan.threads >= 1
    pinned = plan_model(ModelConfig(path=model_path, device="cpu", compute_type="float32",
                                    replicas=3, cpu_threads=1, features_on_device=True))
    assert (pinned.compute_type, pinned.replicas, pinned.threads) == ("float32", 3, 1)
    assert not pinned.features_on_device  # the workers keep the log-mel off CUDA


def test_the_plan_agrees_with_the_loaded_model(model_path: str) -> None:
    from engine.config import DecodeConfig
    from engine.decode.runner import ModelRunner

    plan = plan_model(ModelConfig(path=model_path, device="cpu"))
    runner = ModelRunner(ModelConfig(path=model_path, device="cpu"), DecodeConfig(), plan)
    try:
        assert runner.n_mels == plan.n_mels and runner.device == plan.device
        assert runner.describe()["encoder"] == "ctranslate2"
    finally:
        runner.close()


def test_a_truncated_model_bin_is_refused_before_anything_loads(model_path: str,
                                                                tmp_path) -> None:
    import shutil

    broken = tmp_path / "cut"
    shutil.copytree(model_path, broken)
    (broken / "model.bin").write_bytes((broken / "model.bin").read_bytes()[:100_000])
    with pytest.raises(ModelLoadError, match="truncated model.bin"):
        plan_model(ModelConfig(path=str(broken), device="cpu"))


def test_the_adapter_generates_at_most_max_new_tokens(model_path: str, clips) -> None:
    """The model adapter on a real clip: a prompt in, typed hypotheses out; `max_new_tokens`
    (`--max-new-tokens`) caps what one window generates."""
    from engine.config import DecodeConfig
    from engine.decode.model import WhisperModel
    from engine.prepare.audio import decode
    from engine.prepare.features import FeatureComputer
    from engine.types import AudioItem, Chunk, Prompt, SpeechSpan

    model_config = ModelConfig(path=model_path, device="cpu")
    plan = plan_model(model_config)
    model = WhisperModel(model_config, plan)
    clip = next(c for c in clips if c["id"] == "librispeech_61-70968-0000")
    samples = decode(AudioItem(clip["id"], clip["path"]))
    chunk = Chunk(clip["id"], 0, (SpeechSpan(0.0, samples.size / 16000),),
                  FeatureComputer(plan.n_mels)(samples))
    encoded = model.encode([chunk])
    prompt = Prompt("en", "transcribe")
    [full] = model.generate([prompt], encoded, 0.0, DecodeConfig(beam_size=1))
    [capped] = model.generate([prompt], encoded, 0.0, DecodeConfig(beam_size=1, max_new_tokens=3))
    text = model.vocabulary.decode(full.sequences[0])
    assert text.lower().startswith(" he began") and len(full.sequences[0]) > 10
    assert 1 <= len(capped.sequences[0]) <= 3 and text.startswith(
        model.vocabulary.decode(capped.sequences[0]))
