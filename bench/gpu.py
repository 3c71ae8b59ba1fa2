"""GPU benchmark: faster-whisper's BatchedInferencePipeline vs `batchscribe transcribe`.

Runs on a GPU machine; one without internet takes what it needs from the offline bundle
(bench/offline_bundle.sh, then `. bench/offline_install.sh BUNDLE` there):

    python3 bench/gpu.py --model /tmp/bs/base --corpus /tmp/bs/corpus --repeat 20 --out OUT

(a) faster-whisper BatchedInferencePipeline, one file at a time, audio decoded beforehand (not
timed), float16; (c, `--peer-beam N`) WhisperS2T-reborn's `transcribe_with_vad` on every file in
one call, batch 32 (its audio decoding, VAD and log-mel timed, its model load not); (b) batchscribe
transcribe, decoding included, for each configuration of the sweep (`--processes N` in one: N
processes at once, `--shard i/N` each). GPU busy = mean NVML utilisation while the system runs.
Texts are written to --out so that WER can be computed on another machine (bench/gpu_wer.py).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time

import click
from common import (
    GpuSampler,
    audio_seconds,
    load_corpus,
    repeat_rows,
    run_engine,
    write_manifest,
)


def run_faster_whisper(model_path: str, rows: list[dict[str, str]], batch_size: int,
                       compute_type: str) -> tuple[dict[str, str], float, float]:
    from faster_whisper import BatchedInferencePipeline, WhisperModel
    from faster_whisper.audio import decode_audio

    model = WhisperModel(model_path, device="cuda", compute_type=compute_type)
    pipeline = BatchedInferencePipeline(model)
    audio = {path: decode_audio(path) for path in {r["path"] for r in rows}}
    pipeline.transcribe(next(iter(audio.values())), batch_size=batch_size)  # warm-up
    texts, audio_s = {}, 0.0
    with GpuSampler() as gpu:
        started = time.monotonic()
        for row in rows:
            segments, info = pipeline.transcribe(audio[row["path"]], batch_size=batch_size)
            texts[row["id"]] = "".join(s.text for s in segments).strip()
            audio_s += info.duration
        elapsed = time.monotonic() - started
    return texts, audio_s / elapsed, gpu.busy


def run_fw_sequential(model_path: str, rows: list[dict[str, str]], vad: bool
                      ) -> tuple[dict[str, str], float, float]:
    """faster-whisper's sequential `WhisperModel.transcribe` (beam 5, previous-text conditioning),
    one file at a time, its own audio decoding timed: texts, speed, GPU busy."""
    from faster_whisper import WhisperModel

    model = WhisperModel(model_path, device="cuda", compute_type="float16")
    list(model.transcribe(rows[0]["path"], language="en")[0])  # warm-up
    texts, audio_s = {}, 0.0
    with GpuSampler() as gpu:
        started = time.monotonic()
        for row in rows:
            segments, info = model.transcribe(row["path"], vad_filter=vad, language="en")
            texts[row["id"]] = "".join(s.text for s in segments).strip()
            audio_s += info.duration
        elapsed = time.monotonic() - started
    return texts, audio_s / elapsed, gpu.busy


def run_whisper_s2t(model_path: str, rows: list[dict[str, str]], batch_size: int,
                    beam_size: int) -> tuple[dict[str, str], float, float, float]:
    """WhisperS2T-reborn's `transcribe_with_vad` over every file in one call (its own audio
    decoding, GPU VAD and log-mel included; model load not timed): texts, speed, GPU busy, load s.
    """
    import whisper_s2t

    started = time.monotonic()
    model = whisper_s2t.load_model(model_path, device="cuda", compute_type="float16",
                                   asr_options={"beam_size": beam_size})
    load_s = time.monotonic() - started
    paths = [r["path"] for r in rows]
    model.transcribe_with_vad(paths[:batch_size], lang_codes=["en"] * batch_size,
                              tasks=["transcribe"] * batch_size,
                              initial_prompts=[None] * batch_size, batch_size=batch_size)  # warm-up
    with GpuSampler() as gpu:
        started = time.monotonic()
        out = model.transcribe_with_vad(paths, lang_codes=["en"] * len(paths),
                                        tasks=["transcribe"] * len(paths),
                                        initial_prompts=[None] * len(paths), batch_size=batch_size)
        elapsed = time.monotonic() - started
    texts = {r["id"]: " ".join(s["text"].strip() for s in segments).strip()
             for r, segments in zip(rows, out, strict=True)}
    return texts, audio_seconds(rows) / elapsed, gpu.busy, load_s


def run_batchscribe(manifest: str, out: str, options: str, model: str
                    ) -> tuple[dict, dict[str, str], float, float]:
    """(b): `batchscribe transcribe` on CUDA with `options`, among them the bench's own
    `--processes N` (N processes at once, `--shard i/N` each): report, texts, speed, GPU busy."""
    words = options.split()
    processes = 1
    if "--processes" in words:
        at = words.index("--processes")
        processes = int(words[at + 1])
        words = words[:at] + words[at + 2:]
    report, texts, measured = run_engine(manifest, out, [*words, "--model", model],
                                         device="cuda", processes=processes)
    return report, texts, report["audio_hours"] * 3600 / measured.wall_s, measured.gpu_busy or 0.0


SWEEP = [
    "--beam-size 5 --batch-size 16 --replicas 4 -j 8",
    "--beam-size 5 --batch-size 16 --replicas 8 -j 8",
    "--beam-size 5 --batch-size 8 --replicas 8 -j 12",
    "--beam-size 1 --batch-size 16 --replicas 8 -j 8",
    "--beam-size 1 --batch-size 32 --replicas 4 -j 8",
    "--beam-size 1 --batch-size 16 --replicas 8 -j 12",
    "--beam-size 5 --batch-size 16 --replicas 8 -j 8 --compute-type int8_float16",
    "--beam-size 1 --batch-size 16 --replicas 8 -j 12 --compute-type int8_float16",
]


@click.command()
@click.option("--model", required=True)
@click.option("--corpus", required=True)
@click.option("--repeat", default=20, show_default=True)
@click.option("--out", required=True)
@click.option("--sweep", default=len(SWEEP), show_default=True, help="How many sweep points.")
@click.option("--configs", default=None,
              help="Engine options to run instead of the sweep, ';' between configurations.")
@click.option("--baseline/--no-baseline", default=True, help="Run (a) too.")
@click.option("--peer-beam", "peer_beams", type=int, multiple=True,
              help="Run (c) WhisperS2T-reborn (batch 32) at this beam size; repeatable.")
@click.option("--fw-sequential", is_flag=True, help="Run (d) faster-whisper's sequential "
              "transcribe with and without VAD, on one copy of the corpus (--language en).")
def main(model: str, corpus: str, repeat: int, out: str, sweep: int, configs: str | None,
         baseline: bool, peer_beams: tuple[int, ...], fw_sequential: bool) -> None:
    rows = repeat_rows(load_corpus(corpus), repeat)
    work = tempfile.mkdtemp(prefix="bench-gpu-")
    manifest = write_manifest(rows, os.path.join(work, "manifest.parquet"))
    total_s = audio_seconds(rows)
    results: list[dict] = []
    texts: dict[str, dict[str, str]] = {}
    print(f"corpus {len(rows)} files, {total_s:.0f} s", flush=True)
    if baseline:
        label = "(a) faster-whisper BatchedInferencePipeline, batch 8, float16, pre-decoded"
        texts[label], speed, busy = run_faster_whisper(model, rows, 8, "float16")
        results.append({"system": label, "speed": speed, "gpu_busy": busy})
        print(f"{label}: {speed:.0f}x, GPU busy {busy:.0%}", flush=True)
    for beam in peer_beams:
        label = f"(c) WhisperS2T-reborn transcribe_with_vad, batch 32, beam {beam}, float16"
        texts[label], speed, busy, load_s = run_whisper_s2t(model, rows, 32, beam)
        results.append({"system": label, "speed": speed, "gpu_busy": busy, "load_s": load_s})
        print(f"{label}: {speed:.0f}x, GPU busy {busy:.0%}, load {load_s:.1f} s", flush=True)
    for vad in (True, False) if fw_sequential else ():
        label = f"(d) faster-whisper transcribe(vad_filter={vad}), one copy, float16"
        texts[label], speed, busy = run_fw_sequential(model, rows[: len(rows) // repeat], vad)
        results.append({"system": label, "speed": speed, "gpu_busy": busy})
        print(f"{label}: {speed:.0f}x, GPU busy {busy:.0%}", flush=True)
    chosen = [c.strip() for c in configs.split(";")] if configs else SWEEP[:sweep]
    for n, options in enumerate(chosen):
        folder = os.path.join(work, f"out{n}")
        label = f"(b) batchscribe {options}"
        shutil.rmtree(folder, ignore_errors=True)  # an earlier run's output would be resumed
        report, texts[label], speed, busy = run_batchscribe(manifest, folder, options, model)
        results.append({"system": label, "speed": speed, "gpu_busy": busy,
                        "timings": report["timings"], "wall_s": report["wall_s"],
                        "counts": report["counts"]})
        print(f"{label}: {speed:.0f}x, GPU busy {busy:.0%}, {report['timings']}", flush=True)
    _dump(out, "gpu_texts.json", texts)
    _dump(out, "gpu_results.json", {"total_audio_s": total_s, "results": results,
                                    "device": _device_name()})
    print("\n| system | audio-s/s | GPU busy |\n| --- | --- | --- |")
    for r in results:
        print(f"| {r['system']} | {r['speed']:.0f} | {r['gpu_busy']:.0%} |")


def _device_name() -> str:
    import pynvml

    pynvml.nvmlInit()
    return str(pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0)))


def _dump(folder: str, name: str, payload: object) -> None:
    with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
        json.dump(payload, f)


if __name__ == "__main__":
    main()
