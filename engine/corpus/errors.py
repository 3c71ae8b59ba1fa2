"""The error rows of an output folder: id, kind and message of every row whose status is
`error`, streamed from the committed parts (only the four columns needed are read)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow.parquet as pq

from engine.errors import ConfigError, OutputError
from engine.io import storage
from engine.io.writer import part_files

COLUMNS = ("id", "status", "error", "error_kind")


@dataclass(frozen=True, slots=True)
class ErrorRow:
    """A failed row: its id, `permanent` or `transient` (None in older outputs), the message."""

    item_id: str
    kind: str | None
    message: str


@dataclass(frozen=True)
class ErrorListing:
    """The first error rows of a folder, and how many there are in all."""

    rows: list[ErrorRow]
    total: int


def iter_errors(output_dir: str) -> Iterator[ErrorRow]:
    """Every error row of the folder's committed parts, part by part.

    Raises:
        ConfigError: the folder holds no transcript parts.
        OutputError: a part cannot be read.
    """
    parts = part_files(output_dir)
    if not parts:
        raise ConfigError(f"{storage.redact(output_dir)} holds no transcript parts "
                          "(part-*.parquet)")
    for part in parts:
        try:
            with storage.open_read(part) as f:
                parquet = pq.ParquetFile(f)
                columns = [c for c in COLUMNS if c in parquet.schema_arrow.names]
                for batch in parquet.iter_batches(batch_size=65_536, columns=columns):
                    yield from _errors_of(batch.to_pylist())
        except FileNotFoundError:
            continue  # rewritten by a run settling the folder meanwhile: its rows moved
        except OSError as e:
            raise OutputError(f"part {storage.redact(part)} cannot be read: {e}") from e


def _errors_of(rows: list[dict[str, str | None]]) -> Iterator[ErrorRow]:
    for row in rows:
        if row.get("status") == "error":
            yield ErrorRow(str(row["id"]), row.get("error_kind"), row.get("error") or "")


def list_errors(output_dir: str, limit: int | None = None) -> ErrorListing:
    """The first `limit` error rows (all with None) and the count of all of them."""
    rows: list[ErrorRow] = []
    total = 0
    for row in iter_errors(output_dir):
        total += 1
        if limit is None or len(rows) < limit:
            rows.append(row)
    return ErrorListing(rows, total)
