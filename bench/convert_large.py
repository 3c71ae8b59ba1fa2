"""Conversion at real scale: a large-v3-shaped random checkpoint (1280 wide, 32 encoder layers,
2 decoder layers as distil-large-v3, 128 mel bins) converted to each quantization, then CPU speed
of the converted model, int8 vs float32, on one 30 s window.

    python bench/convert_large.py [--work /tmp/bs-large] [--threads 2]

Prints and appends to bench/RESULTS.md: conversion wall time and output size per quantization;
encoder time per 30 s window and decoder time per token (greedy, 64 tokens forced by
max_length with the end token suppressed, so every quantization decodes as many steps).
"""

from __future__ import annotations

import os
import time

import click
import numpy as np
from common import RESULTS, append_results, converter_checkpoints

from converters import convert

QUANTIZATIONS = ("int8", "float16", "bfloat16", "float32")
DECODE_STEPS = 64
EOT = 50257  # suppressed, so that every model decodes to max_length


def folder_mb(path: str) -> float:
    return sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path)) / 2**20


def model_speed(path: str, compute_type: str, threads: int) -> tuple[float, float]:
    """(encoder s per 30 s window, decoder ms per token), best of 3."""
    import ctranslate2

    model = ctranslate2.models.Whisper(path, device="cpu", compute_type=compute_type,
                                       intra_threads=threads)
    rng = np.random.default_rng(0)
    features = ctranslate2.StorageView.from_array(
        rng.standard_normal((1, 128, 3000)).astype(np.float32))
    encode, total = [], []
    prompt = [[50258, 50259, 50360, 50364]]  # sot, en, transcribe, notimestamps (large-v3 ids)
    for _ in range(3):
        started = time.perf_counter()
        model.encode(features, to_cpu=True)
        encode.append(time.perf_counter() - started)
        started = time.perf_counter()
        result = model.generate(features, prompt, beam_size=1, max_length=DECODE_STEPS,
                                suppress_tokens=[EOT], suppress_blank=False)
        total.append(time.perf_counter() - started)
    tokens = len(result[0].sequences_ids[0])
    per_token_ms = (min(total) - min(encode)) / max(1, tokens) * 1000
    return min(encode), per_token_ms


@click.command()
@click.option("--work", default="/tmp/bs-large", show_default=True)
@click.option("--threads", default=2, show_default=True)
@click.option("--results", default=RESULTS, show_default=True)
def main(work: str, threads: int, results: str) -> None:
    source = os.path.join(work, "hf")
    os.makedirs(work, exist_ok=True)
    started = time.perf_counter()
    if not os.path.isdir(source):
        checkpoints = converter_checkpoints()
        checkpoints.build("distil-large-v3", source, work,
                          dims={**checkpoints.LARGE_DIMS, "encoder_layers": 32,
                                "decoder_layers": 2})
    print(f"checkpoint built in {time.perf_counter() - started:.0f} s "
          f"({folder_mb(source):.0f} MB)", flush=True)
    lines = ["python bench/convert_large.py; random distil-large-v3-shaped checkpoint "
             f"(1280 wide, 32 encoder / 2 decoder layers, 128 mels), {folder_mb(source):.0f} MB "
             f"safetensors; CPU, {threads} threads", "",
             "| quantization | convert s | output MB | encoder s / 30 s window "
             "| decoder ms / token |",
             "| --- | --- | --- | --- | --- |"]
    for quantization in QUANTIZATIONS:
        out = os.path.join(work, quantization)
        started = time.perf_counter()
        convert(source, out, quantization, force=True)
        elapsed = time.perf_counter() - started
        speed = ("", "")
        if quantization in ("int8", "float32"):
            encode_s, token_ms = model_speed(out, quantization, threads)
            speed = (f"{encode_s:.2f}", f"{token_ms:.1f}")
        line = (f"| {quantization} | {elapsed:.0f} | {folder_mb(out):.0f} | {speed[0] or '-'} | "
                f"{speed[1] or '-'} |")
        print(line, flush=True)
        lines.append(line)
    text = "\n".join(lines)
    append_results(results, "Conversion at large-v3 width", text)
    print(text)


if __name__ == "__main__":
    main()
