"""Peak memory of `batchscribe transcribe` against the manifest's row count.

    python bench/memory.py [--rows 2000 --rows 20000] [--speech-every 10]

Each manifest repeats real clips of shared/corpus/real (one row in `--speech-every` is speech) and
a 1 s silent WAV for the other rows (decoded and VAD-filtered, no model call). Peak RSS is summed
over the process tree (main process and decode workers), sampled every 50 ms.
"""

from __future__ import annotations

import os
import sys
import tempfile

import click
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PYTHON, REPO, append_results, load_corpus, read_report, run_measured  # noqa: E402


@click.command()
@click.option("--rows", multiple=True, type=int, default=(2000, 20000), show_default=True)
@click.option("--speech-every", default=10, show_default=True)
@click.option("--results", default=os.path.join(REPO, "bench", "RESULTS.md"), show_default=True)
def main(rows: tuple[int, ...], speech_every: int, results: str) -> None:
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
        manifest = os.path.join(work, f"m{count}.parquet")
        pq.write_table(pa.table({"id": [f"row-{n}" for n in range(count)], "path": paths}),
                       manifest)
        out = os.path.join(work, f"out{count}")
        measured = run_measured([PYTHON, "-m", "engine", "transcribe", manifest, "-o", out, "-q"])
        report = read_report(out)
        speech_rows = len([p for p in paths if p != silent])
        lines.append(f"| {count} | {speech_rows} | {measured.wall_s:.0f} | "
                     f"{report['audio_s_per_s']:.1f} | {measured.peak_rss_mb:.0f} |")
        click.echo(lines[-1])
    text = "\n".join(lines)
    click.echo(text)
    append_results(results, "CPU: peak memory against manifest size", text)


if __name__ == "__main__":
    main()
