"""How much a row's text depends on its batch neighbours, and what a deterministic mode costs.

The same files are transcribed once all together, then in two separate parts (other
neighbours in every batch: as when rows fail, are skipped on a resume, or the manifest is
reordered), with the default batch size and with `--batch-size 1`; the table gives the rows
whose text differs between the two and the throughput of each mode (issue 27 item 9).

    python -m bench.neighbours [--files 24] [--beam-size 5] [--corpus DIR]
        [--split halves|interleaved] [--modes NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from bench.common import CORPUS, REPO, load_corpus


def run(manifest: str, out: str, extra: list[str]) -> tuple[dict[str, str], float, float]:
    """Texts by id, wall seconds and audio seconds of one `batchscribe transcribe`."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "engine", "transcribe", manifest, "-o", out,
                           "-q", "--json", "--device", "cpu", *extra],
                          capture_output=True, text=True, cwd=REPO, check=True)
    wall_s = time.perf_counter() - started
    audio_s = json.loads(done.stdout)["audio_hours"] * 3600
    table = ds.dataset(out, format="parquet").to_table(columns=["id", "text"]).to_pylist()
    return {r["id"]: r["text"] for r in table}, wall_s, audio_s


def measure(rows: list[dict[str, str]], folder: str, extra: list[str],
            split: str) -> dict[str, float]:
    """Rows whose text differs between one run of all and two runs of halves; speed of both."""
    half = len(rows) // 2
    first, second = (rows[:half], rows[half:]) if split == "halves" else (rows[::2], rows[1::2])
    runs = {"all": rows, "first": first, "second": second}
    texts: dict[str, dict[str, str]] = {}
    wall_s = audio_s = 0.0
    for name, subset in runs.items():
        manifest = os.path.join(folder, f"{name}.parquet")
        pq.write_table(pa.table({"id": [r["id"] for r in subset],
                                 "path": [r["path"] for r in subset]}), manifest)
        texts[name], wall, audio = run(manifest, os.path.join(folder, f"out-{name}"), extra)
        if name == "all":
            wall_s, audio_s = wall, audio
    apart = {**texts["first"], **texts["second"]}
    differ = sorted(i for i in texts["all"] if texts["all"][i] != apart[i])
    for item_id in differ:
        print(f"  {item_id}: {texts['all'][item_id]!r}\n  {' ' * len(item_id)}  "
              f"{apart[item_id]!r}", file=sys.stderr)
    return {"rows": len(rows), "differ": len(differ), "wall_s": wall_s,
            "audio_s_per_s": audio_s / wall_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--corpus", default=CORPUS)
    parser.add_argument("--split", choices=("halves", "interleaved"), default="halves",
                        help="how the rows are parted: first and second half, or every other")
    parser.add_argument("--modes", nargs="*", help="only these modes (by name)")
    args = parser.parse_args()
    rows = load_corpus(args.corpus)[: args.files]
    print(f"{'mode':<34} {'rows':>5} {'differ':>7} {'wall s':>8} {'audio-s/s':>10}")
    modes = {"default": [], "batch-size-1": ["--batch-size", "1"],
             "no-conditioning": ["--no-condition-on-previous-text"]}
    for name, extra in modes.items():
        if args.modes and name not in args.modes:
            continue
        with tempfile.TemporaryDirectory(prefix="neighbours-") as folder:
            found = measure(rows, folder, ["--beam-size", str(args.beam_size), *extra],
                            args.split)
        print(f"{name:<34} {found['rows']:>5} {found['differ']:>7} {found['wall_s']:>8.1f} "
              f"{found['audio_s_per_s']:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
