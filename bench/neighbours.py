"""How much a row's text depends on its batch neighbours, and what a deterministic mode costs.

The same files are transcribed once all together, then in two separate parts (other
neighbours in every batch: as when rows fail, are skipped on a resume, or the manifest is
reordered), and all together a second time (the same batches); with the default batch size,
`--batch-size 1` and no conditioning. The table gives the rows whose text differs from the first
run and each mode's throughput (issue 27 item 9). `--snr-db 0` adds white noise to every file,
so that chunks need the temperature fallback, which samples.

    python bench/neighbours.py [--files 24] [--beam-size 5] [--corpus DIR]
        [--split halves|interleaved] [--modes NAME ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

import numpy as np
import soundfile as sf
from common import CORPUS, load_corpus, run_engine, write_manifest


def measure(rows: list[dict[str, str]], folder: str, extra: list[str],
            split: str) -> dict[str, float]:
    """Rows whose text differs between one run of all and two runs of halves; speed of both."""
    half = len(rows) // 2
    first, second = (rows[:half], rows[half:]) if split == "halves" else (rows[::2], rows[1::2])
    runs = {"all": rows, "again": rows, "first": first, "second": second}
    texts: dict[str, dict[str, str]] = {}
    wall_s = audio_s = 0.0
    for name, subset in runs.items():
        manifest = write_manifest(subset, os.path.join(folder, f"{name}.parquet"))
        report, texts[name], measured = run_engine(manifest, os.path.join(folder, f"out-{name}"),
                                                   extra)
        if name == "all":
            wall_s, audio_s = measured.wall_s, report["audio_hours"] * 3600
    apart = {**texts["first"], **texts["second"]}
    differ = _differing(texts["all"], apart)
    return {"rows": len(rows), "differ": len(differ),
            "differ_again": len(_differing(texts["all"], texts["again"])), "wall_s": wall_s,
            "audio_s_per_s": audio_s / wall_s}


def _differing(one: dict[str, str], other: dict[str, str]) -> list[str]:
    differ = sorted(i for i in one if one[i] != other[i])
    for item_id in differ:
        print(f"  {item_id}: {one[item_id]!r}\n  {' ' * len(item_id)}  {other[item_id]!r}",
              file=sys.stderr)
    return differ


def noisy_copies(rows: list[dict[str, str]], folder: str, snr_db: float) -> list[dict[str, str]]:
    """The files with white noise added at `snr_db` (noisy speech: chunks that need the
    temperature fallback), as 16-bit WAVs in `folder`."""
    rng = np.random.default_rng(0)
    copies = []
    for row in rows:
        samples, rate = sf.read(row["path"], dtype="float32", always_2d=True)
        mono = samples.mean(axis=1)
        noise = rng.standard_normal(mono.size).astype(np.float32)
        noise *= np.sqrt(np.mean(mono**2) / 10 ** (snr_db / 10))
        path = os.path.join(folder, f"{row['id']}.wav")
        sf.write(path, np.clip(mono + noise, -1, 1), rate)
        copies.append({**row, "path": path})
    return copies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--corpus", default=CORPUS)
    parser.add_argument("--split", choices=("halves", "interleaved"), default="halves",
                        help="how the rows are parted: first and second half, or every other")
    parser.add_argument("--modes", nargs="*", help="only these modes (by name)")
    parser.add_argument("--snr-db", type=float, help="add white noise at this SNR")
    args = parser.parse_args()
    rows = load_corpus(args.corpus)[: args.files]
    print(f"{'mode':<18} {'rows':>5} {'parted: differ':>15} {'again: differ':>14} "
          f"{'wall s':>8} {'audio-s/s':>10}")
    noise_dir = tempfile.mkdtemp(prefix="neighbours-noisy-")
    if args.snr_db is not None:
        rows = noisy_copies(rows, noise_dir, args.snr_db)
    modes = {"default": [], "batch-size-1": ["--batch-size", "1"],
             "no-conditioning": ["--no-condition-on-previous-text"]}
    for name, extra in modes.items():
        if args.modes and name not in args.modes:
            continue
        with tempfile.TemporaryDirectory(prefix="neighbours-") as folder:
            found = measure(rows, folder, ["--beam-size", str(args.beam_size), *extra],
                            args.split)
        print(f"{name:<18} {found['rows']:>5} {found['differ']:>15} {found['differ_again']:>14} "
              f"{found['wall_s']:>8.1f} {found['audio_s_per_s']:>10.2f}", flush=True)
    shutil.rmtree(noise_dir)


if __name__ == "__main__":
    main()
