"""The model side's ceiling on a GPU, without the pipeline: how many 30 s windows per second the
torch encoder, CTranslate2's decoder and both together (as a replica thread runs them) get
through, one thread and `--threads` at once (issue 13: what bounds the large shapes?).

    python3 bench/gpu_ceiling.py --model /tmp/bs/large/distil-large-v3 --out $OUT

Random log-mel windows (random weights rarely stop, so each generate call decodes exactly
--steps tokens: the end token is suppressed), batch --batch, greedy, no timestamps. Windows/s
times the seconds of speech a window holds (--window-s, ~26.5 s on the long-form set) is the
audio-s/s that part alone allows.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import click

SPECIAL = ("<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>")


@click.command()
@click.option("--model", required=True)
@click.option("--batch", default=16, show_default=True)
@click.option("--steps", default=80, show_default=True, help="Tokens decoded per window.")
@click.option("--threads", default=8, show_default=True)
@click.option("--calls", default=32, show_default=True, help="Batches per measurement.")
@click.option("--window-s", default=26.5, show_default=True)
@click.option("--device", default="cuda", show_default=True, help="cpu: a smoke test.")
@click.option("--out", default=".", show_default=True)
def main(model: str, batch: int, steps: int, threads: int, calls: int, window_s: float,
         device: str, out: str) -> None:
    import ctranslate2
    import tokenizers
    import torch

    from engine.decode.torch_encoder import TorchEncoder, storage_view

    dtype = "float16" if device == "cuda" else "float32"
    whisper = ctranslate2.models.Whisper(model, device=device, compute_type=dtype,
                                         inter_threads=threads)
    encoder = TorchEncoder(model, device, dtype)
    features = torch.randn(batch, whisper.n_mels, 3000, device=device,
                           dtype=getattr(torch, dtype))
    encoded = encoder(features)
    vocabulary = tokenizers.Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
    prompt = [vocabulary.token_to_id(t) for t in SPECIAL]
    if not whisper.is_multilingual:
        prompt = [prompt[0], prompt[3]]
    eot = vocabulary.token_to_id("<|endoftext|>")

    def encode() -> object:
        return encoder(features)

    def generate(e: torch.Tensor = encoded) -> object:
        return whisper.generate(storage_view(e), [prompt] * batch, beam_size=1,
                                max_length=len(prompt) + steps, suppress_tokens=[-1, eot],
                                suppress_blank=False, return_scores=True,
                                return_no_speech_prob=True)

    def align(e: torch.Tensor = encoded) -> object:
        text = [[1000 + i for i in range(steps)]] * batch
        return whisper.align(storage_view(e), prompt[:-1], text, [1500] * batch)

    def both() -> object:
        return generate(encoder(features))

    def replica() -> object:  # encode, generate, align: what one batch of `--timestamps none` costs
        e = encoder(features)
        generate(e)
        return align(e)

    report: dict[str, object] = {"model": model, "batch": batch, "steps": steps,
                                 "threads": threads, "window_s": window_s,
                                 "device": torch.cuda.get_device_name() if device == "cuda"
                                 else "cpu"}
    print("| work | threads | windows/s | audio-s/s at window_s | ms per batch |")
    print("| --- | --- | --- | --- | --- |")
    for name, work in (("encode", encode), ("generate", generate), ("align", align),
                       ("encode+generate", both), ("encode+generate+align", replica)):
        for n in (1, threads):
            rate = _windows_per_s(work, n, calls, batch, device == "cuda")
            report[f"{name} x{n}"] = rate
            print(f"| {name} | {n} | {rate:.0f} | {rate * window_s:,.0f} | "
                  f"{batch * 1000 / rate * n:.0f} |", flush=True)
    with open(os.path.join(out, "gpu_ceiling.json"), "w", encoding="utf-8") as f:
        json.dump(report, f)


def _windows_per_s(work: Callable[[], object], threads: int, calls: int, batch: int,
                   cuda: bool) -> float:
    import torch

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: work(), range(threads)))  # warm-up: every thread's first call
        sync()
        started = time.perf_counter()
        list(pool.map(lambda _: work(), range(calls)))
        sync()
        return calls * batch / (time.perf_counter() - started)


if __name__ == "__main__":
    main()
