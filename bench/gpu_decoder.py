"""What a decoder step costs with and without Whisper's timestamp tokens, on the real model.

Runs on a CUDA machine (one without internet: `. bench/offline_install.sh BUNDLE`,
see bench/offline_bundle.sh) (or on CPU with --device cpu):

    python3 bench/gpu_decoder.py --model /tmp/bs/base --corpus /tmp/bs/corpus --out $OUT

Real speech (the corpus' first clips, padded to 30 s windows) is encoded once per batch size;
then `generate` is timed at each batch size and beam size, once with the timestamp prompt
(CTranslate2 applies Whisper's timestamp rules at every step) and once with <|notimestamps|>.
The figure that matters is the wall time per step per sequence (steps = the longest output).
Last, `--replicas` concurrent calls of one batch each, to see what concurrency buys.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

import click
import numpy as np
from common import load_corpus, timed

SOT, EN, TRANSCRIBE, NO_TIMESTAMPS = 50258, 50259, 50359, 50363  # multilingual base ids


def windows(corpus: str, count: int, n_mels: int) -> np.ndarray:
    """Log-mel features of the corpus' first `count` clips (cycled), each padded to 30 s."""
    from faster_whisper.audio import decode_audio, pad_or_trim
    from faster_whisper.feature_extractor import FeatureExtractor

    extract = FeatureExtractor(feature_size=n_mels)
    rows = load_corpus(corpus)
    clips = [extract(decode_audio(r["path"]), padding=0) for r in rows[: min(count, len(rows))]]
    return np.stack([pad_or_trim(clips[i % len(clips)]) for i in range(count)])


@click.command()
@click.option("--model", required=True)
@click.option("--corpus", required=True)
@click.option("--device", default="cuda", show_default=True)
@click.option("--compute-type", default="float16", show_default=True)
@click.option("--batches", default="1,4,16,64", show_default=True)
@click.option("--beams", default="1,5", show_default=True)
@click.option("--replicas", default=8, show_default=True)
@click.option("--repeat", default=3, show_default=True)
@click.option("--out", default=".", show_default=True, help="Folder for gpu_decoder.json.")
def main(model: str, corpus: str, device: str, compute_type: str, batches: str, beams: str,
         replicas: int, repeat: int, out: str) -> None:
    import ctranslate2

    whisper = ctranslate2.models.Whisper(model, device=device, compute_type=compute_type,
                                         inter_threads=replicas)
    sizes = [int(b) for b in batches.split(",")]
    features = windows(corpus, max(sizes), whisper.n_mels)
    prompts = {"timestamps": [SOT, EN, TRANSCRIBE], "no timestamps": [SOT, EN, TRANSCRIBE,
                                                                        NO_TIMESTAMPS]}
    rows = []
    for batch in sizes:
        encoded = whisper.encode(ctranslate2.StorageView.from_array(features[:batch]),
                                 to_cpu=False)
        for beam in (int(b) for b in beams.split(",")):
            for mode, prompt in prompts.items():
                def run(e=encoded, b=batch, k=beam, p=prompt):
                    return whisper.generate(e, [p] * b, beam_size=k, max_length=448,
                                            return_scores=True, return_no_speech_prob=True)
                steps = max(len(r.sequences_ids[0]) for r in run())
                seconds = timed(run, repeat)
                rows.append({"batch": batch, "beam": beam, "mode": mode, "steps": steps,
                             "call_ms": seconds * 1000,
                             "ms_per_step": seconds * 1000 / steps,
                             "ms_per_step_per_sequence": seconds * 1000 / steps / batch})
                print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in rows[-1].items()), flush=True)
    concurrent = []
    batch = 16 if 16 in sizes else sizes[-1]
    encoded = whisper.encode(ctranslate2.StorageView.from_array(features[:batch]), to_cpu=False)
    for beam in (int(b) for b in beams.split(",")):
        for mode, prompt in prompts.items():
            def one(k=beam, p=prompt):
                return whisper.generate(encoded, [p] * batch, beam_size=k, max_length=448)
            with ThreadPoolExecutor(replicas) as pool:
                def all_at_once():
                    list(pool.map(lambda _: one(), range(replicas)))
                seconds = timed(all_at_once, repeat)
            concurrent.append({"batch": batch, "beam": beam, "mode": mode,
                               "calls": replicas, "windows_per_s": batch * replicas / seconds})
            print(concurrent[-1], flush=True)
    with open(os.path.join(out, "gpu_decoder.json"), "w") as f:
        json.dump({"model": model, "device": device, "single": rows,
                   "concurrent": concurrent}, f, indent=1)
    print("\n| batch | beam | prompt | steps | ms per call | ms per step | ms per step per "
          "sequence |\n| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['batch']} | {r['beam']} | {r['mode']} | {r['steps']} | {r['call_ms']:.0f} | "
              f"{r['ms_per_step']:.2f} | {r['ms_per_step_per_sequence']:.3f} |")
    print("\n| concurrent calls | batch | beam | prompt | windows/s |\n"
          "| --- | --- | --- | --- | --- |")
    for c in concurrent:
        print(f"| {c['calls']} | {c['batch']} | {c['beam']} | {c['mode']} | "
              f"{c['windows_per_s']:.0f} |")


if __name__ == "__main__":
    main()
