"""Output: Parquet parts written whole under a temporary name, then renamed into place.

A part is committed every `rows_per_part` rows or `part_seconds` seconds, so a crash loses at most
the rows of the part being filled; a rerun reads the ids of committed parts and skips them.
Temporary names carry the writer's shard (`.part-....parquet.s0of2.<pid>.tmp`): a run that holds
its shard's lock (`engine.io.lock`) removes a killed run's leftovers of that shard on start.
A write the folder refuses (full, read-only, a file-size limit) is one `OutputError`; the parts
committed before it stay.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
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
UPLOAD_PREFIX = ".batchscribe-upload-"  # in the system's temporary folder, with the writer's pid
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
                 part_seconds: float = 60.0, shard: tuple[int, int] = (0, 1)) -> None:
        _check_output_dir(output_dir)
        self.output_dir = output_dir
        self.schema = schema
        self.shard = shard
        self.record_name: str | None = None  # this run's record, once started (`runlog`)
        self.broken: OutputError | None = None  # set when the folder refused a part
        self._rows_per_part = rows_per_part
        self._part_seconds = part_seconds
        self._rows: list[dict[str, Any]] = []
        self._opened = time.monotonic()
        self._run_tag = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        self._parts_written = 0

    @property
    def tag(self) -> str:
        """What this run's part names carry (`part-<tag>-00000.parquet`)."""
        return self._run_tag

    def remove_temporaries(self) -> None:
        """Remove leftovers of killed runs: this shard's temporary files (call it holding the
        shard's lock: no live run writes them), and any older than `STALE_TMP_S`."""
        if storage.is_uri(self.output_dir):
            return
        mine = f".{_marker(self.shard)}."
        now = time.time()
        for folder in (self.output_dir, *(os.path.join(self.output_dir, d)
                                          for d in (".batchscribe", ".batchscribe/runs"))):
            if not os.path.isdir(folder):
                continue
            for name in os.listdir(folder):
                path = os.path.join(folder, name)
                if not name.endswith(TMP_SUFFIX) or not os.path.isfile(path):
                    continue
                if mine in name or self.shard[1] == 1 or \
                        now - os.path.getmtime(path) > STALE_TMP_S:
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
        """Write the buffered rows as one part, atomically; nothing once the folder refused one.

        Raises:
            OutputError: the folder refused the part (full, read-only...); its rows are lost,
                the parts committed before stay.
        """
        if self._rows and self.broken is None:
            table = pa.Table.from_pylist(self._rows, schema=self.schema)
            name = f"{PART_PREFIX}{self._run_tag}-{self._parts_written:05d}.parquet"
            _make_dirs(self.output_dir)
            try:
                self._write(name, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
            except OutputError as e:
                self.broken = e
                raise
            self._parts_written += 1
            self._rows = []
        self._opened = time.monotonic()

    def write_json(self, name: str, payload: dict[str, Any]) -> None:
        """Write a small JSON file (run record, summary) whole.

        Raises:
            OutputError: the folder refused it.
        """
        text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
        _make_dirs(os.path.dirname(os.path.join(self.output_dir, name)))
        self._write(name, lambda tmp: _write_text(tmp, text))

    def _write(self, name: str, write: Any) -> None:
        path = os.path.join(self.output_dir, name)
        try:
            _atomic_write(path, write, _marker(self.shard))
        except OSError as e:
            raise OutputError(_refused(self.output_dir, name, e)) from e


def _marker(shard: tuple[int, int]) -> str:
    return f"s{shard[0]}of{shard[1]}"


def _refused(output_dir: str, name: str, error: OSError) -> str:
    number = error.errno
    if number is None:  # pyarrow's OSError may say it only in its text: "[errno 28] No space..."
        found = re.search(r"\[errno (\d+)\]", str(error), re.IGNORECASE)
        number = int(found.group(1)) if found else None
    code = errno.errorcode.get(number or 0, "unknown")
    reason = os.strerror(number) if number else (str(error).splitlines() or ["unknown"])[0]
    hint = {"ENOSPC": "free some space", "EDQUOT": "free some space",
            "EFBIG": "raise the file-size limit", "EROFS": "make it writable",
            "EACCES": "make it writable"}.get(code, "check the folder")
    return (f"cannot write {os.path.basename(name)} to {storage.redact(output_dir)}: {reason} "
            f"({code}); {hint}, then rerun to go on (the rows committed so far are kept)")


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


def _atomic_write(path: str, write: Any, marker: str = "s0of1") -> None:
    if storage.is_uri(path):
        _put_whole(path, write)
        return
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{marker}.{os.getpid()}{TMP_SUFFIX}")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)  # a full disk's half-written file goes too
        raise


def _put_whole(location: str, write: Any) -> None:
    """Object stores have no rename: the file is written locally, then sent in one PUT under
    its final name, so the store holds all of it or none of it, whenever the run is killed."""
    handle, tmp = tempfile.mkstemp(prefix=f"{UPLOAD_PREFIX}{os.getpid()}-", suffix=TMP_SUFFIX)
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
