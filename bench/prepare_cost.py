"""What the decode workers' stages cost, per second of audio, on one core: decoding, VAD and
log-mel, the work that bounds a GPU run from the host side (issue 13: is VAD on the GPU worth it?).

    python bench/prepare_cost.py [--corpus DIR] [--n-mels 80,128] [--cores 16] [--out DIR]

Each corpus file goes through the engine's own stage functions in this process (single-threaded:
OMP_NUM_THREADS=1 is set before numpy loads), timed in CPU seconds. Prints CPU-ms per audio
second for each stage and the audio-s/s that `--cores` cores could feed if that stage were all
they did, and writes prepare_cost.json to --out.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import json  # noqa: E402
import time  # noqa: E402

import click  # noqa: E402
from common import CORPUS, load_corpus  # noqa: E402


@click.command()
@click.option("--corpus", default=CORPUS, show_default=True)
@click.option("--n-mels", default="80,128", show_default=True)
@click.option("--cores", default=16, show_default=True, help="Cores to quote the cap for.")
@click.option("--out", default=None, help="Folder for prepare_cost.json.")
def main(corpus: str, n_mels: str, cores: int, out: str | None) -> None:
    from engine.config import VadConfig
    from engine.prepare.audio import SAMPLE_RATE_HZ, decode
    from engine.prepare.chunking import plan_chunks
    from engine.prepare.features import FeatureComputer
    from engine.prepare.stage import _cut  # the chunk's audio, as the workers cut it
    from engine.prepare.vad import SpeechDetector, whole_windows
    from engine.types import AudioItem

    detector = SpeechDetector(VadConfig(), SAMPLE_RATE_HZ)
    computers = {int(n): FeatureComputer(int(n)) for n in n_mels.split(",")}
    spent = {"decode": 0.0, "vad": 0.0, **{f"log-mel {n}": 0.0 for n in computers}}
    audio_s = 0.0
    rows = load_corpus(corpus)
    for row in rows:
        started = time.process_time()
        samples = decode(AudioItem(item_id=row["id"], path=row["path"]))
        spent["decode"] += time.process_time() - started
        audio_s += samples.size / SAMPLE_RATE_HZ
        started = time.process_time()
        speech = detector.find(whole_windows(samples))
        spent["vad"] += time.process_time() - started
        pieces = [_cut(samples, group) for group in plan_chunks(speech.spans)]
        for n, compute in computers.items():
            started = time.process_time()
            for piece in pieces:
                compute(piece)
            spent[f"log-mel {n}"] += time.process_time() - started
    report = {"audio_s": audio_s, "cores": cores, "stages": {
        stage: {"cpu_ms_per_audio_s": s * 1000 / audio_s,
                "cap_audio_s_per_s": cores * audio_s / s if s else None}
        for stage, s in spent.items()}}
    print(f"{audio_s:.0f} s of audio, {len(rows)} files\n")
    print(f"| stage | CPU-ms per audio-s | audio-s/s that {cores} cores feed, this stage alone |")
    print("| --- | --- | --- |")
    for stage, r in report["stages"].items():
        print(f"| {stage} | {r['cpu_ms_per_audio_s']:.2f} | {r['cap_audio_s_per_s']:,.0f} |")
    if out:
        with open(os.path.join(out, "prepare_cost.json"), "w", encoding="utf-8") as f:
            json.dump(report, f)


if __name__ == "__main__":
    main()
