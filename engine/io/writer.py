"""Output: Parquet parts written whole under a temporary name, then renamed into place.

A part is committed every `rows_per_part` rows or `part_seconds` seconds, so a crash loses at most
the rows of the part being filled; a rerun reads the ids of committed parts and skips them. Leftover
temporary files of a killed run are removed on start.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from engine.errors import OutputError
from engine.io import storage
from engine.io.idset import IdSet
from engine.types import ItemError, Outcome

SEGMENT_TYPE = pa.struct([
    ("start_s", pa.float64()), ("end_s", pa.float64()), ("text", pa.string()),
    ("avg_logprob", pa.float64()), ("no_speech_prob", pa.float64()),
    ("compression_ratio", pa.float64()),
])
WORD_TYPE = pa.struct([
    ("start_s", pa.float64()), ("end_s", pa.float64()), ("word", pa.string()),
    ("probability", pa.float64()),
])
BASE_FIELDS = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("status", pa.string(), nullable=False),
    pa.field("error", pa.string()),
    pa.field("error_kind", pa.string()),  # permanent | transient (engine.failure_kind), or null
    pa.field("text", pa.string()),
    pa.field("language", pa.string()),
    pa.field("language_probability", pa.float64()),
    pa.field("duration_s", pa.float64()),
    pa.field("speech_s", pa.float64()),
    pa.field("segments", pa.list_(SEGMENT_TYPE)),
    pa.field("words", pa.list_(WORD_TYPE)),
]
PART_PREFIX = "part-"
TMP_SUFFIX = ".tmp"
STALE_TMP_S = 600  # a temporary file this old belongs to a dead run, not a live shard


def output_schema(passthrough: list[pa.Field]) -> pa.Schema:
    names = {f.name for f in BASE_FIELDS}
    clash = [f.name for f in passthrough if f.name in names]
    if clash:
        raise OutputError(f"passthrough column(s) {', '.join(clash)} clash with output columns")
    return pa.schema(BASE_FIELDS + passthrough)


def part_files(output_dir: str) -> list[str]:
    """The committed parts of an output folder, sorted."""
    if storage.is_uri(output_dir):
        return [p for p in storage.list_files(output_dir)
                if p.rsplit("/", 1)[-1].startswith(PART_PREFIX) and p.endswith(".parquet")]
    if not os.path.isdir(output_dir):
        return []
    return sorted(
        os.path.join(output_dir, n) for n in os.listdir(output_dir)
        if n.startswith(PART_PREFIX) and n.endswith(".parquet")
    )


def read_column(output_dir: str, column: str) -> Iterator[Any]:
    for path in part_files(output_dir):
        yield from read_part(path, [column]).column(column).to_pylist()


def read_part(path: str, columns: Sequence[str] | None) -> pa.Table:
    """Some columns (None: all) of one part, local or remote."""
    if not storage.is_uri(path):
        return pq.read_table(path, columns=None if columns is None else list(columns))
    with storage.open_read(path) as f:
        return pq.read_table(f, columns=None if columns is None else list(columns))


def part_columns(path: str) -> list[str]:
    """The column names of one part, from its footer."""
    if not storage.is_uri(path):
        return list(pq.read_schema(path).names)
    with storage.open_read(path) as f:
        return list(pq.ParquetFile(f).schema_arrow.names)


def to_row(outcome: Outcome) -> dict[str, Any]:
    item = outcome.item
    row: dict[str, Any] = {"id": item.item_id, **item.passthrough}
    if isinstance(outcome, ItemError):
        row.update(status="error", error=storage.redact(outcome.message), error_kind=outcome.kind)
        return row
    row.update(
        status=outcome.status, error=None, error_kind=None, text=outcome.text,
        language=outcome.language,
        language_probability=outcome.language_probability, duration_s=outcome.duration_s,
        speech_s=outcome.speech_s,
        segments=[
            {"start_s": s.start_s, "end_s": s.end_s, "text": s.text,
             "avg_logprob": s.avg_logprob, "no_speech_prob": s.no_speech_prob,
             "compression_ratio": s.compression_ratio}
            for s in outcome.segments
        ],
        words=None if not outcome.segments or any(s.words is None for s in outcome.segments) else [
            {"start_s": w.start_s, "end_s": w.end_s, "word": w.word,
             "probability": w.probability}
            for s in outcome.segments for w in s.words or ()
        ],
    )
    return row


class PartWriter:
    """Buffers rows and commits them as whole Parquet parts."""

    def __init__(self, output_dir: str, schema: pa.Schema, rows_per_part: int = 1000,
                 part_seconds: float = 60.0) -> None:
        _check_output_dir(output_dir)  # created on the first write: a failed start leaves none
        self.output_dir = output_dir
        self.schema = schema
        self._rows_per_part = rows_per_part
        self._part_seconds = part_seconds
        self._rows: list[dict[str, Any]] = []
        self._opened = time.monotonic()
        self._run_tag = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        self._parts_written = 0
        self._remove_stale_temporaries()

    def _remove_stale_temporaries(self) -> None:
        if not os.path.isdir(self.output_dir):
            return
        now = time.time()
        for name in os.listdir(self.output_dir):
            path = os.path.join(self.output_dir, name)
            if name.endswith(TMP_SUFFIX) and now - os.path.getmtime(path) > STALE_TMP_S:
                os.remove(path)

    def done_ids(self) -> IdSet:
        """Ids already committed by earlier runs into this folder."""
        return IdSet.from_ids(read_column(self.output_dir, "id"))

    def write(self, outcome: Outcome) -> None:
        self._rows.append(to_row(outcome))
        full = len(self._rows) >= self._rows_per_part
        if full or time.monotonic() - self._opened >= self._part_seconds:
            self.commit()

    def commit(self) -> None:
        """Write the buffered rows as one part, atomically."""
        if self._rows:
            table = pa.Table.from_pylist(self._rows, schema=self.schema)
            name = f"{PART_PREFIX}{self._run_tag}-{self._parts_written:05d}.parquet"
            _make_dirs(self.output_dir)
            _atomic_write(os.path.join(self.output_dir, name),
                          lambda tmp: pq.write_table(table, tmp, compression="zstd"))
            self._parts_written += 1
            self._rows = []
        self._opened = time.monotonic()

    def write_json(self, name: str, payload: dict[str, Any]) -> None:
        text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
        _make_dirs(os.path.dirname(os.path.join(self.output_dir, name)))
        _atomic_write(os.path.join(self.output_dir, name),
                      lambda tmp: _write_text(tmp, text))


def _check_output_dir(output_dir: str) -> None:
    """Fail now if `output_dir` cannot become the output folder (without creating it)."""
    if storage.is_uri(output_dir):
        return  # an object store has no folders to create; a refused write fails the commit
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise OutputError(f"output {output_dir} exists and is not a folder; give a folder path")
    parent = os.path.dirname(os.path.abspath(output_dir))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot create output folder {output_dir}: {parent} is not a "
                          "writable folder")


def _make_dirs(folder: str) -> None:
    if storage.is_uri(folder):
        return
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create output folder {folder}: {e}") from e


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _atomic_write(path: str, write: Any) -> None:
    if storage.is_uri(path):
        _put_whole(path, write)
        return
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}{TMP_SUFFIX}")
    write(tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _put_whole(location: str, write: Any) -> None:
    """Object stores have no rename: the file is written locally, then sent in one PUT under
    its final name, so the store holds all of it or none of it, whenever the run is killed."""
    handle, tmp = tempfile.mkstemp(prefix=".batchscribe-", suffix=TMP_SUFFIX)
    os.close(handle)
    try:
        write(tmp)
        storage.put_file(tmp, location)
    except OSError as e:
        raise OutputError(f"cannot write {storage.redact(location)}: "
                          f"{storage.redact(str(e))}") from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
