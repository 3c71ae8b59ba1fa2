"""Run metadata beside an output folder's parts, in a hidden folder that Parquet readers skip.

    OUT/.batchscribe/runs/<UTC time>-shard-I-of-N-<tag>.json   one record per invocation
    OUT/.batchscribe/summary.json         the whole folder: rows by status, audio hours, runs

pyarrow, pandas and DuckDB skip names starting with `_` or `.`, but Hugging Face `datasets`
skips only `.` (it reads a `_summary.json` as Parquet and fails), so the metadata lives under a
`.` folder and the output folder loads unchanged in all of them (polars reads `OUT/*.parquet`).
Every invocation writes its record before its first row (`state` "running", with the model,
its compute type and every option) and rewrites it at the end ("finished", "stopped" or
"failed"), then rewrites the summary from the parts; so a run killed at any moment leaves its
settings behind, and a rerun whose model, compute type, decoding, VAD or packing options differ
from those that wrote the folder's rows is refused (or, when allowed, recorded as mixed). A
killed run's record counts as a writer when parts carrying its tag exist (issue 27 item 2).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from engine.errors import ConfigError
from engine.io import storage
from engine.io.writer import PartWriter, part_files, read_part

META_DIR = ".batchscribe"
RUNS_DIR = f"{META_DIR}/runs"
SUMMARY_NAME = f"{META_DIR}/summary.json"
LEGACY_NAMES = ("run.json",)  # what earlier versions wrote (and run-shard-I-of-N.json)
STATUSES = ("ok", "empty", "error")


def record_name(shard: tuple[int, int]) -> str:
    """A new record's path inside the output folder: sortable by time, unique per invocation."""
    index, count = shard
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{RUNS_DIR}/{stamp}-shard-{index}-of-{count}-{uuid.uuid4().hex[:6]}.json"


def latest_record(output_dir: str) -> dict[str, Any]:
    """The record of the folder's last invocation (for tests and benchmarks)."""
    records = read_records(output_dir)
    if not records:
        raise FileNotFoundError(f"{output_dir} has no run record in {RUNS_DIR}/")
    return records[-1]


def settings(report: dict[str, Any]) -> dict[str, Any]:
    """What decides a row's text: the model's content hash and the decoding options."""
    options = report.get("options", {})
    model = report.get("model", {})
    found = {"model_sha256_16": model.get("sha256_16"), "compute_type": model.get("compute_type"),
             "decode": options.get("decode"), "vad": options.get("vad"),
             "pack": options.get("batch", {}).get("pack")}
    return dict(json.loads(json.dumps(found)))  # as a record reads back: lists, not tuples


def read_records(output_dir: str) -> list[dict[str, Any]]:
    """Every run record of a folder, oldest first (earlier versions' run*.json included)."""
    paths = []
    if storage.is_uri(output_dir):  # an object store: records are read through fsspec
        paths = [p for p in storage.list_files(storage.join(output_dir, RUNS_DIR))
                 if p.endswith(".json")]
    runs = os.path.join(output_dir, RUNS_DIR)
    if os.path.isdir(runs):
        paths = [os.path.join(runs, n) for n in sorted(os.listdir(runs)) if n.endswith(".json")]
    if os.path.isdir(output_dir):
        paths += [os.path.join(output_dir, n) for n in sorted(os.listdir(output_dir))
                  if n in LEGACY_NAMES or (n.startswith("run-shard-") and n.endswith(".json"))]
    records = []
    for path in paths:
        try:
            records.append(json.loads(storage.read_bytes(path)))
        except (OSError, ValueError):
            continue  # a record is a report, never needed to read the rows
    return records


def _wrote_rows(record: dict[str, Any], part_names: set[str]) -> bool:
    """Whether the run of `record` wrote rows: as it says, or (killed before it could say) as
    the parts carrying its tag show."""
    if record.get("rows") or sum(record.get("counts", {}).values()):
        return True
    tag = record.get("part_tag")
    return bool(tag) and any(f"-{tag}-" in f"-{name}" for name in part_names)


def _part_names(output_dir: str) -> set[str]:
    return {path.rsplit("/", 1)[-1].rsplit(os.sep, 1)[-1] for path in part_files(output_dir)}


def differences(output_dir: str, current: dict[str, Any]) -> list[str]:
    """How `current` settings differ from those of the runs that wrote the folder's rows."""
    found: list[str] = []
    names = _part_names(output_dir)
    for record in read_records(output_dir):
        if not _wrote_rows(record, names):
            continue
        earlier = settings(record)
        for key, value in current.items():
            if key in earlier and earlier[key] is not None and earlier[key] != value:
                found.append(_describe(key, earlier[key], value))
    return sorted(set(found))


def _describe(key: str, earlier: Any, now: Any) -> str:
    if isinstance(earlier, dict) and isinstance(now, dict):
        changed = sorted(k for k in set(earlier) | set(now) if earlier.get(k) != now.get(k))
        parts = [f"{key}.{k} {earlier.get(k)!r} -> {now.get(k)!r}" for k in changed]
        return ", ".join(parts)
    return f"{key} {earlier!r} -> {now!r}"


def check_settings(output_dir: str, current: dict[str, Any], allow_mixed: bool) -> list[str]:
    """The differences from earlier runs' settings; refused unless `allow_mixed`.

    Raises:
        ConfigError: the folder's rows were written with another model or other options.
    """
    found = differences(output_dir, current)
    if found and not allow_mixed:
        raise ConfigError(
            f"{storage.redact(output_dir)} holds rows written with other settings "
            f"({'; '.join(found)}); rerun with the same model and options, use another output "
            "folder, or allow mixed settings")
    return found


def folder_summary(output_dir: str) -> dict[str, Any]:
    """Rows by status, audio and speech hours over every part, and the runs that wrote them."""
    counts: Counter[str] = Counter()
    audio_s = speech_s = 0.0
    parts = part_files(output_dir)
    for path in parts:
        table = read_part(path, ["status", "duration_s", "speech_s"])
        counts.update(table.column("status").to_pylist())
        audio_s += sum(v or 0.0 for v in table.column("duration_s").to_pylist())
        speech_s += sum(v or 0.0 for v in table.column("speech_s").to_pylist())
    records = read_records(output_dir)
    names = {path.rsplit("/", 1)[-1].rsplit(os.sep, 1)[-1] for path in parts}
    writers = [settings(r) for r in records if _wrote_rows(r, names)]
    distinct = {json.dumps(s, sort_keys=True) for s in writers}
    return {
        "rows": sum(counts.values()),
        "counts": {s: counts.get(s, 0) for s in sorted({*STATUSES, *counts})},
        "audio_hours": round(audio_s / 3600, 4),
        "speech_hours": round(speech_s / 3600, 4),
        "parts": len(parts),
        "runs": len(records),
        "models": sorted({str(s["model_sha256_16"]) for s in writers}),
        "mixed_settings": len(distinct) > 1,
        "updated_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def start_record(writer: PartWriter, report: dict[str, Any]) -> None:
    """Write this invocation's record before its first row (`state` "running", the part tag)."""
    _adopt_legacy(writer.output_dir)
    if writer.record_name is None:
        writer.record_name = record_name(writer.shard)
    writer.write_json(writer.record_name, {**report, "state": "running", "part_tag": writer.tag})


def write_metadata(writer: PartWriter, report: dict[str, Any],
                   state: str = "finished") -> dict[str, Any]:
    """Rewrite this invocation's record (`state`), then the folder's summary; returns the
    summary."""
    _adopt_legacy(writer.output_dir)
    if writer.record_name is None:
        writer.record_name = record_name(writer.shard)
    writer.write_json(writer.record_name, {**report, "state": state, "part_tag": writer.tag})
    summary = folder_summary(writer.output_dir)
    writer.write_json(SUMMARY_NAME, summary)
    return summary


def _adopt_legacy(output_dir: str) -> None:
    """Move an earlier version's run*.json under RUNS_DIR, where Parquet readers do not look."""
    if not os.path.isdir(output_dir):
        return
    for name in os.listdir(output_dir):
        if name in LEGACY_NAMES or (name.startswith("run-shard-") and name.endswith(".json")):
            os.makedirs(os.path.join(output_dir, RUNS_DIR), exist_ok=True)
            os.replace(os.path.join(output_dir, name),
                       os.path.join(output_dir, RUNS_DIR, f"00000000-legacy-{name}"))
