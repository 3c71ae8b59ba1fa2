"""GPU: CTranslate2's encoder vs the torch encoder (`--encoder`), end to end (issue 13).

Runs on a CUDA machine (one without internet: `. bench/offline_install.sh BUNDLE`,
see bench/offline_bundle.sh):

    python3 bench/gpu_encoder.py build --work /tmp/bs/large --tokenizer /tmp/bs/base/tokenizer.json
    python3 bench/gpu_encoder.py e2e --models /tmp/bs/large/distil-large-v3,... \
        --corpus /tmp/bs/corpus --repeat 10 --out $OUT
    python3 bench/gpu_encoder.py diff --model /tmp/bs/base --corpus /tmp/bs/corpus --out $OUT
    python3 bench/gpu_encoder.py e2e --models /tmp/bs/large/distil-large-v3 --encoders torch \
        --features device,workers --corpus /tmp/bs/corpus --repeat 10 --out $OUT
    python3 bench/gpu_encoder.py mel --corpus /tmp/bs/corpus --out $OUT

build: random checkpoints with the real shapes of distil-large-v3 (32 encoder / 2 decoder layers,
1280 wide, 128 mels) and large-v3-turbo (32 / 4), converted to float16 by our converter.
e2e: `batchscribe transcribe` in a fresh process per (model, encoder), on real audio; random
weights rarely stop, so each generate call's length is capped at its prompt plus
--tokens-per-s x the batch's longest chunk (the same for both encoders; the tokens really
decoded per second of speech are reported), fallback off, `--timestamps none`. GPU busy = mean
NVML utilisation, memory = peak NVML memory used, while the command runs. `--features
device,workers` runs the torch encoder with the log-mel on the GPU (`--gpu-features`, the
decode workers ship samples) and in the decode workers (`--cpu-features`); CTranslate2's encoder
always takes the workers' features.
mel: log-mel of 30 s windows, the workers' numpy FeatureComputer (CPU-ms per window, one core)
against the batched torch STFT on the GPU (wall ms per window at batch 16 and 64), and their max
abs difference on the GPU (`--device cpu` runs it on the CPU build of torch).
diff: encoder outputs of real clips, CTranslate2 vs torch, both float16 on the GPU: max abs diff.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from typing import Any

import click
import numpy as np
from common import GpuSampler, converter_checkpoints, load_corpus, read_output

from engine.options import click_options

SHAPES = {"distil-large-v3": 2, "large-v3-turbo": 4}  # decoder layers; 32 encoder layers each
OPTIONS = ["--beam-size", "1", "--timestamps", "none", "--language", "en", "--batch-size", "16"]


@click.group()
def main() -> None:
    pass


@main.command()
@click.option("--work", required=True)
@click.option("--tokenizer", required=True, help="The multilingual tokenizer.json (base's).")
def build(work: str, tokenizer: str) -> None:
    from converters import convert

    checkpoints = converter_checkpoints()

    for name, decoder_layers in SHAPES.items():
        started = time.monotonic()
        source = os.path.join(work, name + "-hf")
        checkpoints.build(name, source, work, multilingual_tokenizer=tokenizer,
                          dims={**checkpoints.LARGE_DIMS, "encoder_layers": 32,
                                "decoder_layers": decoder_layers})
        convert(source, os.path.join(work, name), quantization="float16")
        print(f"{name}: built and converted in {time.monotonic() - started:.0f} s", flush=True)


@main.command()
@click.argument("manifest")
@click.option("-o", "--output", required=True)
@click.option("--tokens-per-s", type=float, default=0.0,
              help="Cap each window's generation at this many tokens per second of a 30 s "
              "window (--max-new-tokens); 0: no cap.")
@click.option("--stacks", default=None, help="Sample the threads' stacks into this file.")
@click_options
def one(manifest: str, output: str, tokens_per_s: float, stacks: str | None,
        **options: Any) -> None:
    """One transcription in this process, through the public API: fallback off (random
    weights' text always looks wrong), each window's new tokens capped; prints the report."""
    from contextlib import nullcontext
    from dataclasses import replace

    from stacks import StackSampler

    from engine import transcribe
    from engine.options import from_cli

    config = from_cli(manifest, output, options)
    cap = max(1, math.ceil(tokens_per_s * 30)) if tokens_per_s > 0 else None
    config = replace(config, decode=replace(config.decode, temperatures=(0.0,),
                                            max_new_tokens=cap))
    with StackSampler(stacks) if stacks else nullcontext():
        report = transcribe(config)
    print(json.dumps(report, default=str))


def _manifest(corpus: str, repeat: int, work: str) -> tuple[str, float]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [dict(r, id=f"{r['id']}#{k}") for k in range(repeat) for r in load_corpus(corpus)]
    path = os.path.join(work, f"manifest-{repeat}.parquet")
    pq.write_table(pa.table({"id": [r["id"] for r in rows], "path": [r["path"] for r in rows]}),
                   path)
    return path, sum(float(r["duration_s"]) for r in rows)


@main.command()
@click.option("--models", required=True, help="Model folders, comma-separated.")
@click.option("--corpus", required=True)
@click.option("--repeat", default=10, show_default=True)
@click.option("--tokens-per-s", default=3.0, show_default=True)
@click.option("--extra", default="-j 12 --replicas 8", show_default=True)
@click.option("--encoders", default="ctranslate2,torch", show_default=True)
@click.option("--features", default="device", show_default=True,
              help="Where the torch encoder's log-mel is computed, comma-separated: device "
              "(--gpu-features), workers (--cpu-features).")
@click.option("--stacks/--no-stacks", default=False,
              help="Sample each run's thread stacks into --out (bench/stacks.py).")
@click.option("--out", required=True)
def e2e(models: str, corpus: str, repeat: int, tokens_per_s: float, extra: str, encoders: str,
        features: str, stacks: bool, out: str) -> None:
    work = "/tmp/bs/work-encoder"
    os.makedirs(work, exist_ok=True)
    manifest, total_s = _manifest(corpus, repeat, work)
    results = []
    for model in models.split(","):
        for encoder, where in _runs(encoders.split(","), features.split(",")):
            folder = os.path.join(work, f"{os.path.basename(model)}-{encoder}-{where}")
            subprocess.run(["rm", "-rf", folder], check=True)
            flag = "--gpu-features" if where == "device" else "--cpu-features"
            sampled = (["--stacks", os.path.join(out, f"stacks-{os.path.basename(folder)}.txt")]
                       if stacks else [])
            cmd = [sys.executable, os.path.abspath(__file__), "one", "--tokens-per-s",
                   str(tokens_per_s), *sampled, manifest, "-o", folder,
                   "--device", "cuda", "--model", model, "--encoder", encoder, flag, *OPTIONS,
                   *extra.split()]
            with GpuSampler() as gpu:
                started = time.monotonic()
                done = subprocess.run(cmd, capture_output=True, text=True)
                elapsed = time.monotonic() - started
            if done.returncode not in (0, 3):
                raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr[-3000:]}")
            tokens = _tokens(folder)
            report = json.loads(done.stdout[done.stdout.index("{"):])
            row = {"model": os.path.basename(model), "encoder": encoder,
                   "features": report["model"].get("features", "workers"), "wall_s": elapsed,
                   "speed": total_s / elapsed, "gpu_busy": gpu.busy,
                   "gpu_memory_gib": gpu.memory_gib, "text_tokens_per_s": tokens / total_s,
                   "timings": report["timings"]}
            results.append(row)
            print(json.dumps(row), flush=True)
    with open(os.path.join(out, "gpu_encoder_e2e.json"), "w", encoding="utf-8") as f:
        json.dump({"total_audio_s": total_s, "options": OPTIONS + extra.split(),
                   "tokens_per_s_cap": tokens_per_s, "results": results}, f)
    print("\n| model shape | encoder | features | audio-s/s | GPU busy | GPU memory GiB | "
          "words / s | prepare CPU-s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['model']} | {r['encoder']} | {r['features']} | {r['speed']:.0f} | "
              f"{r['gpu_busy']:.0%} | {r['gpu_memory_gib']:.1f} | {r['text_tokens_per_s']:.2f} | "
              f"{r['timings']['prepare_cpu_s']:.0f} |")


def _runs(encoders: list[str], features: list[str]) -> list[tuple[str, str]]:
    """(encoder, where its features are computed): CTranslate2's encoder reads the workers'."""
    return [(encoder, where) for encoder in encoders
            for where in (features if encoder == "torch" else ["workers"])]


def _tokens(folder: str) -> int:
    """Words written (random text: a rough count of what was decoded)."""
    return sum(len(t.split()) for t in read_output(folder).values())


@main.command()
@click.option("--model", required=True)
@click.option("--corpus", required=True)
@click.option("--clips", default=16, show_default=True)
@click.option("--out", required=True)
def diff(model: str, corpus: str, clips: int, out: str) -> None:
    import ctranslate2
    import torch

    from engine.decode.torch_encoder import TorchEncoder
    from engine.prepare.audio import decode
    from engine.prepare.features import FeatureComputer
    from engine.types import AudioItem

    ct2 = ctranslate2.models.Whisper(model, device="cuda", compute_type="float16")
    compute = FeatureComputer(int(ct2.n_mels))
    paths = [r["path"] for r in load_corpus(corpus)[:clips]]
    features = np.stack([compute(decode(AudioItem(item_id=p, path=p))[: 30 * 16000])
                         for p in paths])
    theirs = ct2.encode(ctranslate2.StorageView.from_array(features), to_cpu=True)
    theirs = np.asarray(theirs.to(ctranslate2.DataType.float32))
    ours = TorchEncoder(model, "cuda", "float16")(features).float().cpu().numpy()
    exact = TorchEncoder(model, "cuda", "float32")(features).cpu().numpy()
    report = {"clips": clips, "max_abs_diff_ct2_vs_torch_fp16": float(np.abs(ours - theirs).max()),
              "max_abs_diff_torch_fp16_vs_fp32": float(np.abs(ours - exact).max()),
              "max_abs_diff_ct2_fp16_vs_torch_fp32": float(np.abs(theirs - exact).max()),
              "largest_output": float(np.abs(exact).max()), "torch": torch.__version__}
    print(json.dumps(report), flush=True)
    with open(os.path.join(out, "gpu_encoder_diff.json"), "w", encoding="utf-8") as f:
        json.dump(report, f)


@main.command()
@click.option("--corpus", required=True)
@click.option("--clips", default=64, show_default=True)
@click.option("--n-mels", default=128, show_default=True)
@click.option("--device", default="cuda", show_default=True)
@click.option("--out", required=True)
def mel(corpus: str, clips: int, n_mels: int, device: str, out: str) -> None:
    import torch

    from engine.decode.device_mel import MelOnDevice
    from engine.prepare.audio import decode
    from engine.prepare.features import FeatureComputer
    from engine.types import AudioItem

    paths = [r["path"] for r in load_corpus(corpus)]
    pieces = [decode(AudioItem(item_id=p, path=p))[: 30 * 16000]
              for p in (paths * (clips // len(paths) + 1))[:clips]]
    compute = FeatureComputer(n_mels)
    started = time.process_time()
    expected = np.stack([compute(p) for p in pieces])
    cpu_ms = (time.process_time() - started) * 1000 / len(pieces)
    on_device = MelOnDevice(n_mels, device)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    report: dict[str, Any] = {"clips": len(pieces), "n_mels": n_mels,
                              "audio_s": sum(p.size for p in pieces) / 16000,
                              "numpy_cpu_ms_per_window": cpu_ms, "torch": torch.__version__,
                              "device": device}
    for batch in (16, 64):
        on_device.log_mel(pieces[:batch])  # warm-up: cuFFT plans
        sync()
        started = time.perf_counter()
        for i in range(0, len(pieces), batch):
            on_device.log_mel(pieces[i: i + batch])
        sync()
        report[f"torch_ms_per_window_batch_{batch}"] = ((time.perf_counter() - started) * 1000
                                                      / len(pieces))
    got = np.concatenate([on_device.log_mel(pieces[i: i + 16]).cpu().numpy()
                          for i in range(0, len(pieces), 16)])
    report["max_abs_diff_torch_vs_numpy"] = float(np.abs(got - expected).max())
    print(json.dumps(report), flush=True)
    with open(os.path.join(out, "gpu_encoder_mel.json"), "w", encoding="utf-8") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main()
