"""The manifest: Parquet file(s) read as a stream of record batches, turned into AudioItems.

Accepts a Parquet file, a folder of Parquet files or a glob, local or a URI (s3://, https://, any
fsspec protocol; read through `engine.io.storage`). Relative `path` values resolve against the
folder of the Parquet file they come from, also when that folder is remote. The schema and the
ids are checked before any work starts; afterwards rows are read a batch at a time, never the
whole file.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine.errors import ManifestError
from engine.io import storage
from engine.io.idset import IdSet, find_duplicate_hashes, hash_ids
from engine.types import AudioItem

OVERRIDE_COLUMNS = ("language", "task", "prompt", "start_s", "end_s")
ROWS_PER_READ = 1024
ROWS_PER_READ_WITH_BYTES = 32  # rows carrying audio bytes are large


def resolve_files(source: str) -> list[str]:
    """The Parquet files a manifest argument names, sorted."""
    if storage.is_uri(source):
        return _resolve_uri(source)
    if os.path.isdir(source):
        files = sorted(
            os.path.join(root, name)
            for root, _, names in os.walk(source)
            for name in names
            if name.endswith(".parquet") and not name.startswith((".", "_"))
        )
    elif any(c in source for c in "*?["):
        files = storage.glob(source)
    elif os.path.isfile(source):
        files = [source]
    else:
        raise ManifestError(f"manifest {source!r} does not exist")
    if not files:
        raise ManifestError(f"manifest {source!r} matches no Parquet file")
    return files


def _resolve_uri(source: str) -> list[str]:
    try:
        if source.split("://", 1)[0].lower() in ("http", "https"):
            files = [source]  # no folders or globs over plain HTTP
        elif any(c in source for c in "*?["):
            files = storage.glob(source)
        elif storage.is_dir(source):
            files = [f for f in storage.list_files(source, recursive=True)
                     if f.endswith(".parquet")
                     and not f.rsplit("/", 1)[-1].startswith((".", "_"))]
        elif storage.exists(source):
            files = [source]
        else:
            raise ManifestError(f"manifest {storage.redact(source)!r} does not exist")
    except OSError as e:
        raise ManifestError(f"manifest {storage.redact(source)!r} cannot be listed: "
                            f"{storage.redact(str(e))}") from e
    if not files:
        raise ManifestError(f"manifest {storage.redact(source)!r} matches no Parquet file")
    return files


def _open(path: str) -> pq.ParquetFile:
    try:
        if storage.is_uri(path):
            return pq.ParquetFile(storage.open_read(path))
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise ManifestError(
            f"manifest file {storage.redact(path)} is not readable Parquet: "
            f"{storage.redact(str(e))}") from e


@dataclass(frozen=True)
class Manifest:
    """A checked manifest: its files, its columns, its row count."""

    files: tuple[str, ...]
    schema: pa.Schema
    num_rows: int

    @property
    def audio_column(self) -> str:
        return "path" if "path" in self.schema.names else "audio"

    def read_columns(self, columns: list[str]) -> Iterator[tuple[str, pa.RecordBatch]]:
        """Stream record batches of the given columns, with the file each comes from."""
        batch_rows = ROWS_PER_READ_WITH_BYTES if "audio" in columns else ROWS_PER_READ
        for path in self.files:
            try:
                for batch in _open(path).iter_batches(batch_size=batch_rows, columns=columns):
                    yield path, batch
            except (pa.ArrowException, OSError) as e:
                raise ManifestError(
                    f"manifest file {storage.redact(path)} cannot be read: "
                    f"{storage.redact(str(e))}") from e

    def iter_ids(self) -> Iterator[str]:
        """Every row's id, in manifest order."""
        columns = [c for c in ("id", self.audio_column) if c in self.schema.names]
        if self.audio_column == "audio" and "id" in self.schema.names:
            columns = ["id"]
        for path, batch in self.read_columns(columns):
            for offset, row in enumerate(batch.to_pylist()):
                yield row_id(row, path, offset)

    def check_ids(self) -> None:
        """Fail if two rows share an id (or a row has none)."""
        hashes = hash_ids(self.iter_ids())
        repeated = find_duplicate_hashes(hashes)
        if not repeated:
            return
        seen: set[str] = set()
        for item_id in self.iter_ids():
            if item_id in seen:
                raise ManifestError(
                    f"manifest has duplicate id {item_id!r}; ids must be unique "
                    "(add an 'id' column, or remove the repeated rows)"
                )
            if hash_ids([item_id])[0] in repeated:
                seen.add(item_id)

    def items(self, passthrough: tuple[str, ...] = (), skip: IdSet | None = None,
              shard: tuple[int, int] = (0, 1)) -> Iterator[AudioItem]:
        """Stream the rows as AudioItems, leaving out `skip`ped ids and other shards' rows."""
        missing = [c for c in passthrough if c not in self.schema.names]
        if missing:
            raise ManifestError(
                f"passthrough column(s) {', '.join(missing)} not in the manifest; "
                f"it has: {', '.join(self.schema.names)}"
            )
        wanted = {"id", self.audio_column, *OVERRIDE_COLUMNS, *passthrough}
        columns = [c for c in self.schema.names if c in wanted]
        for path, batch in self.read_columns(columns):
            yield from rows_to_items(batch.to_pylist(), storage.parent(path),
                                     passthrough, skip, shard)


def rows_to_items(rows: list[dict[str, Any]], base_dir: str, passthrough: tuple[str, ...],
                  skip: IdSet | None, shard: tuple[int, int]) -> Iterator[AudioItem]:
    """Manifest rows as AudioItems, leaving out `skip`ped ids and other shards' rows."""
    ids = [row_id(row, base_dir, offset) for offset, row in enumerate(rows)]
    done = skip.contains(ids) if skip is not None else np.zeros(len(ids), dtype=bool)
    for row, item_id, is_done in zip(rows, ids, done, strict=True):
        if not is_done and in_shard(item_id, shard):
            yield row_to_item(row, item_id, base_dir, passthrough)


def in_shard(item_id: str, shard: tuple[int, int]) -> bool:
    index, count = shard
    return count == 1 or zlib.crc32(item_id.encode("utf-8")) % count == index


def open_manifest(source: str) -> Manifest:
    """Open and check a manifest's schema (not yet its ids: see `Manifest.check_ids`).

    Raises:
        ManifestError: no file, unreadable Parquet, no audio column, or files that disagree.
    """
    files = resolve_files(source)
    first = _open(files[0])
    schema = first.schema_arrow
    num_rows = first.metadata.num_rows
    for path in files[1:]:
        other = _open(path)
        if set(other.schema_arrow.names) != set(schema.names):
            raise ManifestError(
                f"manifest file {path} has columns {other.schema_arrow.names}, "
                f"but {files[0]} has {schema.names}; all parts must share one schema"
            )
        num_rows += other.metadata.num_rows
    _check_schema(schema, files[0])
    return Manifest(files=tuple(files), schema=schema, num_rows=num_rows)


def _check_schema(schema: pa.Schema, path: str) -> None:
    names = schema.names
    if "id" in names:
        _check_id_type(schema.field("id").type, path)
    if "path" not in names and "audio" not in names:
        raise ManifestError(
            f"manifest {path} has no 'path' or 'audio' column (it has: {', '.join(names)}); "
            "add a 'path' column of audio file paths, or an 'audio' column of bytes"
        )
    if "path" in names and not pa.types.is_string(schema.field("path").type) \
            and not pa.types.is_large_string(schema.field("path").type):
        raise ManifestError(f"manifest {path}: column 'path' must hold strings")
    if "audio" in names and "path" not in names:
        audio_type = schema.field("audio").type
        is_bytes = pa.types.is_binary(audio_type) or pa.types.is_large_binary(audio_type)
        is_hf_struct = pa.types.is_struct(audio_type) and audio_type.get_field_index("bytes") >= 0
        if not (is_bytes or is_hf_struct):
            raise ManifestError(
                f"manifest {path}: column 'audio' must be binary or a struct {{bytes, path}} "
                f"(Hugging Face datasets), got {audio_type}"
            )


def _check_id_type(id_type: pa.DataType, path: str) -> None:
    """Ids are strings or integers; anything else would be turned into a string silently."""
    if not (pa.types.is_string(id_type) or pa.types.is_large_string(id_type)
            or pa.types.is_integer(id_type) or pa.types.is_null(id_type)):
        raise ManifestError(f"manifest {path}: column 'id' holds {id_type}; ids must be strings "
                            "(or integers): convert the column")


def row_id(row: dict[str, Any], path: str, offset: int) -> str:
    """The row's id: its `id` (a string or an integer), else its path.

    Raises:
        ManifestError: a null or empty id, or no id and no path to derive one from.
    """
    if "id" in row:
        value = row["id"]
        if value is None or value == "":
            what = "a null" if value is None else "an empty"
            raise ManifestError(f"manifest {path}: a row near row {offset} has {what} id; every "
                                "row needs a unique, non-empty id")
        return str(value)
    if row.get("path"):
        return str(row["path"])
    audio = row.get("audio")
    if isinstance(audio, dict) and audio.get("path"):
        return str(audio["path"])
    raise ManifestError(
        f"manifest {path}: a row near row {offset} has no id and no path to derive one from; "
        "add an 'id' column"
    )


def row_to_item(row: dict[str, Any], item_id: str, base_dir: str,
               passthrough: tuple[str, ...]) -> AudioItem:
    audio_path: str | None = row.get("path")
    audio_bytes: bytes | None = None
    audio = row.get("audio")
    if audio_path is None and isinstance(audio, dict):
        audio_bytes = audio.get("bytes")
        if audio_bytes is None and audio.get("path"):
            audio_path = audio["path"]
    elif audio_path is None and audio is not None:
        audio_bytes = audio
    if audio_path:  # an empty path stays empty: the decoder says so (never the manifest's folder)
        audio_path = storage.join(base_dir, audio_path)
    return AudioItem(
        item_id=item_id,
        path=audio_path,
        audio_bytes=audio_bytes,
        language=row.get("language"),
        task=row.get("task"),
        prompt=row.get("prompt"),
        start_s=_optional_float(row.get("start_s")),
        end_s=_optional_float(row.get("end_s")),
        passthrough={name: row.get(name) for name in passthrough},
    )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
