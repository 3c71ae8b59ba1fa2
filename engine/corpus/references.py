"""A references table (TSV, CSV or Parquet): the reference text of each audio file.

The table names its files by a `file` column (a path relative to the scanned folder, or a file
name) or by an `id` column (the relative path, or the file's name without its extension), and
holds the text in one of `TEXT_COLUMNS`. When it has an `id` column, the manifest takes those
ids for the files it matches, so that a manifest and the references it was built from share
their ids (and `eval --manifest` joins either of them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pyarrow as pa

from engine.errors import ConfigError

TEXT_COLUMNS = ("reference", "reference_text", "text", "transcript", "transcription",
                "sentence")
KEY_COLUMNS = ("file", "id")


@dataclass(frozen=True)
class Reference:
    """A file's reference text, and the table's id for it (None when the table has no ids)."""

    item_id: str | None
    text: str


@dataclass(frozen=True)
class ReferenceTable:
    """The references of a table, looked up by a scanned file's relative path."""

    path: str
    by_key: dict[str, Reference]
    key_column: str
    text_column: str

    def lookup(self, rel_path: str) -> Reference | None:
        name = rel_path.rsplit("/", 1)[-1]
        for key in (rel_path, name, os.path.splitext(rel_path)[0], os.path.splitext(name)[0]):
            found = self.by_key.get(key)
            if found is not None:
                return found
        return None


def read_table(path: str) -> pa.Table:
    """A TSV, CSV or Parquet table, every column as text for the delimited ones.

    Raises:
        ConfigError: the file cannot be read, or its extension is none of those.
    """
    extension = os.path.splitext(path)[1].lower()
    try:
        if extension == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if extension in (".tsv", ".csv"):
            from pyarrow import csv

            delimiter = "\t" if extension == ".tsv" else ","
            table = csv.read_csv(path, parse_options=csv.ParseOptions(
                delimiter=delimiter, quote_char='"' if delimiter == "," else False))
            return table.cast(pa.schema([(n, pa.string()) for n in table.column_names]))
    except (OSError, pa.ArrowException) as e:
        raise ConfigError(f"references table {path} cannot be read: {e}") from e
    raise ConfigError(f"references table {path}: unknown kind {extension or '(none)'}; "
                      "give a .tsv, .csv or .parquet file")


def load_reference_table(path: str) -> ReferenceTable:
    """Read `path` and index its references by file or id.

    Raises:
        ConfigError: unreadable, no `file`/`id` column, no text column, or a key given twice.
    """
    table = read_table(path)
    names = table.column_names
    key = next((c for c in KEY_COLUMNS if c in names), None)
    text = next((c for c in TEXT_COLUMNS if c in names), None)
    if key is None or text is None:
        raise ConfigError(
            f"references table {path} needs a file or id column and a text column ("
            f"{', '.join(TEXT_COLUMNS)}); it has: {', '.join(names)}")
    ids = table.column("id").to_pylist() if "id" in names else [None] * table.num_rows
    by_key: dict[str, Reference] = {}
    for row_key, item_id, value in zip(table.column(key).to_pylist(), ids,
                                       table.column(text).to_pylist(), strict=True):
        if row_key is None or value is None or not str(value).strip():
            continue
        if str(row_key) in by_key:
            raise ConfigError(f"references table {path}: {key} {row_key!r} is given twice")
        by_key[str(row_key)] = Reference(None if item_id is None else str(item_id),
                                         str(value).strip())
    return ReferenceTable(path, by_key, key, text)
