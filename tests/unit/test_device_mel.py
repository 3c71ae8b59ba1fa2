"""Log-mel on the model's device (engine/decode/device_mel.py) against the workers' numpy
features (FeatureComputer), on the CPU build of torch: real clips, shifted tails, packed windows,
spilled long files, the torch encoder's input and a whole run (issue 13 item 2)."""

from __future__ import annotations

import csv
import json
import os
import pickle
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.config import VadConfig  # noqa: E402
from engine.decode.device_mel import MelOnDevice  # noqa: E402
from engine.decode.packing import build_window  # noqa: E402
from engine.prepare.audio import decode  # noqa: E402
from engine.prepare.features import FeatureComputer  # noqa: E402
from engine.prepare.stage import Preparer  # noqa: E402
from engine.types import (  # noqa: E402
    AudioItem,
    Chunk,
    ChunkRequest,
    DeviceMel,
    PreparedItem,
    Prompt,
    SpeechSpan,
)

CORPUS = "/work/shared/corpus/real"
# float32 rounding of two FFTs (pocketfft in numpy, torch's own); measured max 2.9e-5 on the
# clips below for 80 and 128 mel bins, features spanning about -1.1 to 1.5
TOLERANCE = 2e-4
SHORT = ["ljspeech_LJ002-0020", "common_voice_en_22058266", "mfa_docs_english_slow",
         "jfk_inaugural"]  # 1.5 s to 11 s
LONG = ["mfa_acoustic_corpus", "osr_us_000_0034_8k", "earnings22_1_4482311_3_62"]  # 27-60 s


def corpus_samples(names: list[str]) -> list[np.ndarray]:
    path = os.path.join(CORPUS, "manifest.tsv")
    if not os.path.exists(path):
        pytest.skip(f"the shared corpus is not here ({CORPUS})")
    with open(path, encoding="utf-8") as f:
        files = {row["id"]: row["file"] for row in csv.DictReader(f, delimiter="\t")}
    return [decode(AudioItem(name, path=os.path.join(CORPUS, files[name]))) for name in names]


@pytest.fixture(scope="module")
def pieces() -> list[np.ndarray]:
    """Short clips whole; long ones cut at 30 s, just under it, and just over (the last
    frames of a chunk over 30 s are trimmed, but count for its max)."""
    short, long = corpus_samples(SHORT), corpus_samples(LONG)
    out = short + [s[:480_000] for s in long] + [long[0][:479_999], long[1][:480_123]]
    out += [long[2][16_000 * 20: 16_000 * 20 + 160 * 1234 + 39]]  # a middle, odd length
    return out


@pytest.mark.parametrize("n_mels", [80, 128])
def test_device_log_mel_equals_the_workers(pieces: list[np.ndarray], n_mels: int) -> None:
    expected = np.stack([FeatureComputer(n_mels)(p) for p in pieces])
    mel = MelOnDevice(n_mels)
    got = mel.log_mel(pieces).numpy()
    assert got.shape == expected.shape == (len(pieces), n_mels, 3000)
    diff = float(np.abs(got - expected).max())
    print(f"{n_mels} mel bins, {len(pieces)} clips: max abs diff {diff:.2e}")
    assert diff < TOLERANCE
    assert not got[0, :, 160:].any()  # 1.5 s: zeros after its own frames, as pad_or_trim
    alone = np.stack([mel.log_mel([p]).numpy()[0] for p in pieces])
    assert np.array_equal(alone, got)  # a batch's longer pieces change nothing


def chunk_of(samples: np.ndarray, features: np.ndarray | DeviceMel, item: str = "a") -> Chunk:
    return Chunk(item, 0, (SpeechSpan(0.0, samples.size / 16000),), features)


def test_tails_and_packed_windows_equal_the_workers(pieces: list[np.ndarray]) -> None:
    compute, mel = FeatureComputer(80), MelOnDevice(80)
    clip = pieces[3]  # 11 s
    host, device = chunk_of(clip, compute(clip)), chunk_of(clip, DeviceMel.of(clip))
    tails = [(host.tail(2.345).tail(1.0), device.tail(2.345).tail(1.0))]
    shorts = pieces[:3]
    host_window = build_window([chunk_of(s, compute(s), str(i)) for i, s in enumerate(shorts)],
                               2.0)
    device_window = build_window([chunk_of(s, DeviceMel.of(s), str(i))
                                  for i, s in enumerate(shorts)], 2.0)
    assert device_window.offsets_s == host_window.offsets_s
    pairs = [*tails, (host_window, device_window),
             (host_window.tail(4.0), device_window.tail(4.0))]
    expected = np.stack([h.features for h, _ in pairs])
    got = mel([d.features for _, d in pairs]).numpy()
    assert float(np.abs(got - expected).max()) < TOLERANCE
    mixed = mel([host.features, device.features]).numpy()  # host features pass unchanged
    assert np.array_equal(mixed[0], host.features)


def test_preparer_ships_samples_and_spills_them(pieces: list[np.ndarray], tmp_path: Any) -> None:
    import soundfile

    path = str(tmp_path / "long.flac")
    soundfile.write(path, np.concatenate(pieces[4:7]), 16000)  # 90 s: several chunks
    item = AudioItem("long", path=path)
    on_cpu = Preparer(VadConfig(), 80, stream_above_s=None)(item)
    spill = tmp_path / "spill"
    spill.mkdir()
    shipped = Preparer(VadConfig(), 80, str(spill), stream_above_s=60.0,
                       features_on_device=True)(item)
    assert isinstance(on_cpu, PreparedItem) and isinstance(shipped, PreparedItem)
    assert isinstance(shipped.chunks[0].features, DeviceMel)
    assert len(shipped.chunks) > 1 and all(c.spilled is not None for c in shipped.chunks[1:])
    loaded = [c.loaded() for c in pickle.loads(pickle.dumps(shipped)).chunks]
    assert [c.spans for c in loaded] == [c.spans for c in on_cpu.chunks]
    got = MelOnDevice(80)([c.features for c in loaded]).numpy()
    assert float(np.abs(got - np.stack([c.features for c in on_cpu.chunks])).max()) < TOLERANCE


def test_torch_encoder_input_from_samples(model_path: str, pieces: list[np.ndarray]) -> None:
    """The function that turns a batch of sample chunks into the encoder's output (here on the
    CPU) against the encoder on the workers' features."""
    from engine.decode.torch_encoder import TorchEncoder

    encoder = TorchEncoder(model_path, device="cpu", dtype="float32")
    batch = [pieces[0], pieces[4]]
    expected = encoder(np.stack([FeatureComputer(80)(p) for p in batch]))
    got = encoder.encode_windows([DeviceMel.of(p) for p in batch])
    diff = float((got - expected).abs().max())
    print(f"tiny.en encoder output from device log-mel: max abs diff {diff:.2e}")
    assert diff < 1e-3


def test_runner_decodes_sample_chunks_as_feature_chunks(model_path: str,
                                                        pieces: list[np.ndarray]) -> None:
    from engine.config import DecodeConfig, ModelConfig
    from engine.decode.runner import ModelRunner

    runner = ModelRunner(ModelConfig(path=model_path, device="cpu", compute_type="float32",
                                     encoder="torch"), DecodeConfig(beam_size=1))
    try:
        assert not runner.features_on_device  # on the CPU the workers keep computing them
        compute = FeatureComputer(runner.n_mels)
        texts = []
        for features in (compute, DeviceMel.of):
            chunks = [chunk_of(p, features(p), str(i)) for i, p in enumerate(pieces[2:5])]
            results = runner.decode_batch([ChunkRequest(c, Prompt("en", "transcribe"))
                                           for c in chunks])
            texts.append([" ".join(s.text for s in r.segments) for r in results])
    finally:
        runner.close()
    assert texts[0] == texts[1] and all(len(t) > 10 for t in texts[0])


def test_transcribe_with_features_on_the_device(model_path: str, clips: list[dict[str, str]],
                                                write_manifest: Any, tmp_path: Any,
                                                read_rows: Any, monkeypatch: Any) -> None:
    """The whole run with samples shipped (as on CUDA; here the CPU stands in) against the
    workers' features: same texts, and the run record says where the features were computed.

    Two clips: the third (common_voice_en_22058266) ends in 1.3 s of near silence whose
    continuation decode sits on the no-speech threshold; its text flipped between runs even with
    bitwise-equal device features (2 of 12 runs), so it cannot be compared; the runner test
    above decodes it both ways."""
    from click.testing import CliRunner

    from engine.cli import cli
    from engine.decode import plan

    manifest = write_manifest({"id": [c["id"] for c in clips[:2]],
                               "path": [c["path"] for c in clips[:2]]})
    texts, where = {}, {}
    for features in ("--cpu-features", "--gpu-features"):
        if features == "--gpu-features":
            monkeypatch.setattr(plan, "_features_on_device",
                                lambda model, encoder, device: model.features_on_device)
        out = str(tmp_path / features)
        result = CliRunner().invoke(cli, ["transcribe", manifest, "-o", out, "--device", "cpu",
                                          "--compute-type", "float32", "--encoder", "torch",
                                          features, "--beam-size", "1", "-j", "0", "-q"])
        assert result.exit_code == 0, result.output
        texts[features] = {k: r["text"] for k, r in read_rows(out).items()}
        runs = os.path.join(out, ".batchscribe", "runs")
        with open(os.path.join(runs, sorted(os.listdir(runs))[-1]), encoding="utf-8") as f:
            where[features] = json.load(f)["model"]["features"]
    assert where == {"--cpu-features": "workers", "--gpu-features": "device"}
    assert texts["--gpu-features"] == texts["--cpu-features"]
    assert all(len(t) > 10 for t in texts["--cpu-features"].values())
