"""Peak memory of `batchscribe transcribe` against the manifest's row count, or a file's length.

    python bench/memory.py [--rows 2000 --rows 20000] [--speech-every 10]
    python bench/memory.py --hours 1 --hours 3 --hours 10 [--pause-s 0.5]

Each rows manifest repeats real clips of shared/corpus/real (one row in `--speech-every` is speech)
and a 1 s silent WAV for the other rows (decoded and VAD-filtered, no model call). With `--hours`,
each manifest is one 16 kHz FLAC of that length under /tmp: every clip of the corpus in turn,
`--pause-s` of silence after each, looped. Peak RSS is summed over the process tree (main process
and decode workers), sampled every 50 ms.
"""

from __future__ import annotations

import os
import tempfile

import click
import numpy as np
import pyarrow.dataset as ds
import soundfile
from common import RESULTS, append_results, load_corpus, read_audio, run_engine, write_manifest


@click.command()
@click.option("--rows", multiple=True, type=int, default=(2000, 20000), show_default=True)
@click.option("--speech-every", default=10, show_default=True)
@click.option("--hours", multiple=True, type=float, help="One-file manifests of these lengths.")
@click.option("--pause-s", default=0.5, show_default=True, help="Silence after each clip.")
@click.option("--results", default=RESULTS, show_default=True)
def main(rows: tuple[int, ...], speech_every: int, hours: tuple[float, ...], pause_s: float,
         results: str) -> None:
    if hours:
        long_files(hours, pause_s, results)
        return
    work = tempfile.mkdtemp(prefix="bench-mem-")
    silent = os.path.join(work, "silence.wav")
    soundfile.write(silent, np.zeros(16000, dtype=np.float32), 16000)
    clips = [r["path"] for r in load_corpus() if float(r["duration_s"]) < 12]
    lines = [f"python bench/memory.py {' '.join(f'--rows {n}' for n in rows)} "
             f"--speech-every {speech_every}", "",
             "| rows | speech rows | wall s | audio-s/s | peak RSS MB (all processes) |",
             "| --- | --- | --- | --- | --- |"]
    for count in rows:
        paths = [clips[(n // speech_every) % len(clips)] if n % speech_every == 0 else silent
                 for n in range(count)]
        manifest = write_manifest([{"id": f"row-{n}", "path": p} for n, p in enumerate(paths)],
                                  os.path.join(work, f"m{count}.parquet"))
        report, _, measured = run_engine(manifest, os.path.join(work, f"out{count}"), [])
        speech_rows = len([p for p in paths if p != silent])
        lines.append(f"| {count} | {speech_rows} | {measured.wall_s:.0f} | "
                     f"{report['audio_s_per_s']:.1f} | {measured.peak_rss_mb:.0f} |")
        click.echo(lines[-1])
    text = "\n".join(lines)
    click.echo(text)
    append_results(results, "CPU: peak memory against manifest size", text)


def long_files(hours: tuple[float, ...], pause_s: float, results: str) -> None:
    """Peak memory of one-file manifests of growing length."""
    work = tempfile.mkdtemp(prefix="bench-mem-long-", dir="/tmp")
    lines = [f"python bench/memory.py {' '.join(f'--hours {h:g}' for h in hours)} "
             f"--pause-s {pause_s:g}", "",
             "| file h | wall s | audio-s/s | chunks' speech h | peak RSS MB (all processes) |",
             "| --- | --- | --- | --- | --- |"]
    for length_h in hours:
        path = os.path.join(work, f"long-{length_h:g}h.flac")
        write_long_file(path, length_h * 3600, pause_s)
        manifest = write_manifest([{"id": f"long-{length_h:g}h", "path": path}],
                                  os.path.join(work, f"m{length_h:g}h.parquet"))
        out = os.path.join(work, f"out{length_h:g}h")
        _, _, measured = run_engine(manifest, out, [])
        os.remove(path)
        table = ds.dataset(out, format="parquet", exclude_invalid_files=True).to_table()
        speech_h = table.column("speech_s")[0].as_py() / 3600
        lines.append(f"| {length_h:g} | {measured.wall_s:.0f} | "
                     f"{length_h * 3600 / measured.wall_s:.1f} | {speech_h:.2f} | "
                     f"{measured.peak_rss_mb:.0f} |")
        click.echo(lines[-1])
    text = "\n".join(lines)
    click.echo(text)
    append_results(results, "CPU: peak memory against one file's length", text)


def write_long_file(path: str, seconds: float, pause_s: float) -> None:
    """The corpus clips in turn, `pause_s` of silence after each, looped to `seconds` (16 kHz
    FLAC, written a clip at a time)."""
    pause = np.zeros(int(pause_s * 16000), dtype=np.float32)
    one_pass = np.concatenate([part for row in load_corpus() for part in
                               (read_audio(row["path"]), pause)])
    left = int(seconds * 16000)
    with soundfile.SoundFile(path, "w", samplerate=16000, channels=1, format="FLAC") as f:
        while left > 0:
            f.write(one_pass[:left])
            left -= min(left, one_pass.size)


if __name__ == "__main__":
    main()
