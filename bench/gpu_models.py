"""Model-shaped GPU throughput without real weights: distil-large-v3 and large-v3.

Runs on a CUDA machine (one without internet: `. bench/offline_install.sh BUNDLE`,
see bench/offline_bundle.sh):

    mkdir -p /tmp/stub/av && touch /tmp/stub/av/__init__.py  # PyAV: imported, never used here
    PYTHONPATH=$PYTHONPATH:/tmp/stub python3 bench/gpu_models.py --work /tmp/bs/models \
        --tokenizer /tmp/bs/base/tokenizer.json --out $OUT

For each shape: a randomly initialised checkpoint with its real dimensions (1280 wide, 32 encoder
layers; 2 or 32 decoder layers, 128 mel bins) is built with transformers, converted to float16
with our converter, and loaded by CTranslate2 on the GPU. Then, at batch 1..64 (30 s windows):
encoder time per window (CTranslate2, and the same weights in PyTorch with SDPA attention) against
the time the GPU's peak matrix throughput needs for the same FLOPs; decoder time per step, greedy,
on the encoder output, with the end token suppressed so that every batch decodes as many steps
(random weights make the text meaningless; shapes and costs are real).
"""

from __future__ import annotations

import json
import os
import time

import click
import numpy as np
from common import converter_checkpoints, timed

from converters import convert

SHAPES = {"distil-large-v3": 2, "large-v3": 32}  # decoder layers; both have 32 encoder layers
ENCODER_LAYERS, WIDTH, FRAMES, VOCAB = 32, 1280, 1500, 51866
PEAK_TFLOPS = 989.0  # H100 / H200 SXM dense float16 tensor-core peak (NVIDIA's data sheet)
PROMPT = [50258, 50259, 50360, 50364]  # sot, en, transcribe, notimestamps (large-v3 ids)
EOT = 50257
STEPS = 48


def encoder_flops(width: int = WIDTH, layers: int = ENCODER_LAYERS, frames: int = FRAMES) -> float:
    """Multiply-adds x 2 of one 30 s window: the two convolutions, then per layer the four
    attention projections, scores and weighted sum, and the 4x-wide MLP."""
    convs = 2 * (128 * 3 * width * 2 * frames + width * 3 * width * frames)
    per_layer = 2 * (4 * frames * width**2 + 2 * frames**2 * width + 8 * frames * width**2)
    return float(convs + layers * per_layer)


def ctranslate2_times(path: str, batches: list[int]) -> dict[int, tuple[float, float, int]]:
    """{batch: (encoder s per call, decoder s per call, decoded steps)} on the GPU."""
    import ctranslate2

    model = ctranslate2.models.Whisper(path, device="cuda", compute_type="float16")
    rng = np.random.default_rng(0)
    out = {}
    for batch in batches:
        features = ctranslate2.StorageView.from_array(
            rng.standard_normal((batch, 128, 3000)).astype(np.float32))
        encode_s = timed(lambda f=features: model.encode(f, to_cpu=False))
        encoded = model.encode(features, to_cpu=False)
        steps = len(model.generate(encoded, [PROMPT] * batch, beam_size=1, max_length=STEPS,
                                   suppress_tokens=[EOT], suppress_blank=False)[0].sequences_ids[0])
        decode_s = timed(lambda e=encoded, b=batch: model.generate(
            e, [PROMPT] * b, beam_size=1, max_length=STEPS, suppress_tokens=[EOT],
            suppress_blank=False))
        out[batch] = (encode_s, decode_s, steps)
        print(f"  batch {batch}: encoder {encode_s * 1000:.1f} ms, decoder {decode_s * 1000:.1f} "
              f"ms for {steps} steps", flush=True)
    return out


def torch_encoder_times(source: str, batches: list[int]) -> dict[int, float]:
    """{batch: s per call} of the same checkpoint's encoder in PyTorch, float16, SDPA."""
    import torch
    from transformers import WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(
        source, dtype=torch.float16, attn_implementation="sdpa").model.encoder.cuda().eval()
    out = {}
    for batch in batches:
        features = torch.randn(batch, 128, 3000, dtype=torch.float16, device="cuda")

        def run(f: torch.Tensor = features) -> None:
            with torch.inference_mode():
                model(f)
            torch.cuda.synchronize()

        out[batch] = timed(run)
    return out


@click.command()
@click.option("--work", default="/tmp/bs/models", show_default=True)
@click.option("--tokenizer", required=True, help="A multilingual Whisper tokenizer.json "
              "(the base model's), for the checkpoints' vocabulary.")
@click.option("--batches", default="1,2,4,8,16,32,64", show_default=True)
@click.option("--shapes", default=",".join(SHAPES), show_default=True)
@click.option("--out", default=".", show_default=True, help="Folder for gpu_models.json.")
def main(work: str, tokenizer: str, batches: str, shapes: str, out: str) -> None:
    sizes = [int(b) for b in batches.split(",")]
    os.makedirs(work, exist_ok=True)
    peak_ms = encoder_flops() / (PEAK_TFLOPS * 1e12) * 1000
    results: dict[str, object] = {"peak_tflops": PEAK_TFLOPS, "encoder_gflops": encoder_flops()
                                  / 1e9, "peak_encoder_ms_per_window": peak_ms, "shapes": {}}
    for name in shapes.split(","):
        source, converted = os.path.join(work, name, "hf"), os.path.join(work, name, "ct2")
        started = time.perf_counter()
        if not os.path.isdir(source):
            checkpoints = converter_checkpoints()
            checkpoints.build(name, source, work, multilingual_tokenizer=tokenizer, dims={
                **checkpoints.LARGE_DIMS, "encoder_layers": ENCODER_LAYERS,
                "decoder_layers": SHAPES[name]})
        built_s = time.perf_counter() - started
        if not os.path.isdir(converted):
            convert(source, converted, "float16", force=True)
        print(f"{name}: built {built_s:.0f} s, converted {time.perf_counter() - started:.0f} s",
              flush=True)
        ct2 = ctranslate2_times(converted, sizes)
        torch_s = torch_encoder_times(source, sizes)
        rows = []
        for batch in sizes:
            encode_s, decode_s, steps = ct2[batch]
            rows.append({"batch": batch, "ct2_encoder_ms_per_window": encode_s * 1000 / batch,
                         "torch_encoder_ms_per_window": torch_s[batch] * 1000 / batch,
                         "decoder_ms_per_step": decode_s * 1000 / steps,
                         "decoder_ms_per_step_per_sequence": decode_s * 1000 / steps / batch,
                         "steps": steps})
        results["shapes"][name] = rows  # type: ignore[index]
    text = render(results)
    print(text)
    with open(os.path.join(out, "gpu_models.json"), "w") as f:
        json.dump(results, f, indent=1)


def render(results: dict) -> str:
    peak = results["peak_encoder_ms_per_window"]
    lines = [f"Encoder: {results['encoder_gflops']:.0f} GFLOP per 30 s window; at "
             f"{results['peak_tflops']:.0f} TFLOP/s that is {peak:.2f} ms.", "",
             "| shape | batch | CT2 encoder ms/window | PyTorch SDPA encoder ms/window | "
             "CT2 vs peak | decoder ms/step | ms/step per sequence |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, rows in results["shapes"].items():
        for r in rows:
            lines.append(
                f"| {name} | {r['batch']} | {r['ct2_encoder_ms_per_window']:.1f} | "
                f"{r['torch_encoder_ms_per_window']:.1f} | "
                f"{peak / r['ct2_encoder_ms_per_window']:.0%} | {r['decoder_ms_per_step']:.2f} | "
                f"{r['decoder_ms_per_step_per_sequence']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
