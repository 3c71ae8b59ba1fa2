"""Retried error rows: which ids a run does again, and how their earlier rows leave the output.

A run does every manifest row that the output does not hold yet, plus the error rows that may heal:
the transient ones always (`engine.failure_kind`), all of them with `retry_errors`. A retried row's
new outcome is committed in a new part like any other row; only after that, `settle` rewrites the
parts that hold the old error rows without them (the new part renamed in, then the old one
deleted). A kill in between leaves an id twice (its error row beside its new row, or a part beside
its rewrite); `settle` runs first in every run too, so the next run finishes the rewrite: of the
rows of one id it keeps a non-error row before an error row, then the one in the newest part.
Readers of a folder that a killed retry left unsettled prefer non-error rows the same way.
"""

from __future__ import annotations

import os
import time
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from engine.io import storage
from engine.io.idset import IdSet
from engine.io.writer import PART_PREFIX, _atomic_write, part_columns, part_files, read_part

SETTLE_MARKER = "settle"  # temporary names of rewritten parts (removed by a run of one shard)


def ids_to_skip(output_dir: str, retry_all: bool) -> tuple[IdSet, int]:
    """Settle the folder, then the ids a run skips and how many error rows it retries.

    Args:
        output_dir: The output folder.
        retry_all: Retry every error row, not only the transient ones.
    """
    table = _row_index(output_dir)
    if settle(output_dir, table):
        table = _row_index(output_dir)
    retried = pc.equal(table["status"], "error")
    if not retry_all:
        retried = pc.and_(retried, pc.equal(table["error_kind"], "transient"))
    retried = pc.fill_null(retried, False)
    kept = table.filter(pc.invert(retried))["id"].to_pylist()
    return IdSet.from_ids(kept), int(pc.sum(retried).as_py() or 0)


def settle(output_dir: str, table: pa.Table | None = None) -> int:
    """Leave one row per id in an output folder; returns how many parts were rewritten."""
    table = _row_index(output_dir) if table is None else table
    if table.num_rows == 0:
        return 0
    losers = _losers(table)
    parts = sorted({p for p, _ in losers})
    for part in parts:
        _rewrite_without(output_dir, part, {row for p, row in losers if p == part})
    return len(parts)


def _losers(table: pa.Table) -> list[tuple[str, int]]:
    """(part, row) of every row that another row of its id outranks."""
    bad = pc.equal(table["status"], "error").cast(pa.int8())
    ranked = table.append_column("bad", bad).sort_by(
        [("id", "ascending"), ("bad", "ascending"), ("part", "descending")])
    ids = ranked["id"]
    if ranked.num_rows < 2:
        return []
    same = pc.equal(ids.slice(1), ids.slice(0, ranked.num_rows - 1)).to_numpy(
        zero_copy_only=False)
    loser_rows = np.flatnonzero(same) + 1
    parts = ranked["part"].to_pylist()
    rows = ranked["row"].to_pylist()
    return [(parts[i], rows[i]) for i in loser_rows]


def _row_index(output_dir: str) -> pa.Table:
    """id, status, error_kind, part (its path), row (its index in the part) of every row."""
    tables = []
    for path in part_files(output_dir):
        names = part_columns(path)
        columns = [c for c in ("id", "status", "error_kind") if c in names]
        t = read_part(path, columns)
        if "error_kind" not in names:  # written before errors had a kind: retried on request
            t = t.append_column("error_kind", pa.nulls(t.num_rows, pa.string()))
        t = t.append_column("part", pa.array([path] * t.num_rows, pa.string()))
        t = t.append_column("row", pa.array(np.arange(t.num_rows, dtype=np.int64)))
        tables.append(t.select(["id", "status", "error_kind", "part", "row"]))
    if not tables:
        return pa.table({"id": pa.array([], pa.string()), "status": pa.array([], pa.string()),
                         "error_kind": pa.array([], pa.string()),
                         "part": pa.array([], pa.string()), "row": pa.array([], pa.int64())})
    return pa.concat_tables(tables)


def _rewrite_without(output_dir: str, part: str, rows: set[int]) -> None:
    """Replace `part` by a new part without `rows` (renamed in first, then the old one goes)."""
    table = read_part(part, None)
    keep = np.ones(table.num_rows, dtype=bool)
    keep[list(rows)] = False
    if storage.is_uri(output_dir):
        _rewrite_remote(output_dir, part, table, keep)
        return
    name = None
    if keep.any():
        tag = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        name = os.path.join(output_dir, f"{PART_PREFIX}{tag}-settled.parquet")
        kept = table.filter(pa.array(keep))
        _atomic_write(name, lambda tmp: pq.write_table(kept, tmp, compression="zstd"),
                      SETTLE_MARKER)
    try:
        os.remove(part)
    except FileNotFoundError:  # a concurrent shard rewrote it first: keep its copy, not ours
        if name is not None:
            os.remove(name)



def _rewrite_remote(output_dir: str, part: str, table: pa.Table, keep: np.ndarray) -> None:
    """The object-store rewrite: no rename there, and deleting a missing object is no error,
    so a concurrent shard's rewrite cannot be seen; the new part's name is derived from the
    old one's instead, so two shards settling one part write the same object, not two copies."""
    if keep.any():
        stem = part.rsplit("/", 1)[-1][: -len(".parquet")]
        kept = table.filter(pa.array(keep))
        _atomic_write(storage.join(output_dir, f"{stem}-s.parquet"),
                      lambda tmp: pq.write_table(kept, tmp, compression="zstd"), SETTLE_MARKER)
    storage.delete(part)
