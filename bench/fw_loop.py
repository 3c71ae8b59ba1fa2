"""faster-whisper baselines, one file at a time: `WhisperModel.transcribe(vad_filter=True)` or
`BatchedInferencePipeline.transcribe`. Writes {id: text} and the transcription time as JSON."""

from __future__ import annotations

import json
import sys
import time

import pyarrow.parquet as pq


def main(mode: str, manifest: str, model_path: str, threads: int, out: str,
         language: str | None = None) -> None:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    model = WhisperModel(model_path, device="cpu", compute_type="int8", cpu_threads=threads)
    pipeline = BatchedInferencePipeline(model) if mode == "batched" else None
    table = pq.read_table(manifest, columns=["id", "path"]).to_pylist()
    texts, audio_s = {}, 0.0
    started = time.monotonic()
    for row in table:
        if pipeline is not None:
            segments, info = pipeline.transcribe(row["path"], batch_size=8, language=language)
        else:
            segments, info = model.transcribe(row["path"], vad_filter=True, language=language)
        texts[row["id"]] = "".join(s.text for s in segments).strip()
        audio_s += info.duration
    elapsed = time.monotonic() - started
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"texts": texts, "audio_s": audio_s, "transcribe_s": elapsed}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], *sys.argv[6:7])
