"""How the Ray backend reads and writes URIs: fsspec filesystems handed to Ray Data, and the
commit of staged parts on object stores (which have no rename).

Ray Data reads the manifest and writes the staging folder through the same fsspec filesystem
as the local backend (so the same environment credentials and endpoint apply). On an object
store a staged part is one complete object; it is adopted by a server-side copy to a final
name derived from its staged name, then the staged object is deleted: a run killed between
the two copies it again to the same name on the next adoption, so no row is written twice.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from engine.io import storage
from engine.io.writer import PART_PREFIX


def ray_location(location: str) -> tuple[str, Any]:
    """`location` as Ray Data wants it: a path, and a pyarrow filesystem for URIs (else None)."""
    if not storage.is_uri(location):
        return location, None
    paths, fs = _ray_paths([location])
    return paths[0], fs


def ray_paths(locations: list[str]) -> tuple[list[str], Any]:
    """Files of one filesystem as Ray Data wants them (see `ray_location`)."""
    if not locations or not storage.is_uri(locations[0]):
        return locations, None
    return _ray_paths(locations)


def _ray_paths(locations: list[str]) -> tuple[list[str], Any]:
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    fs, _ = storage.filesystem(locations[0])
    return [storage.filesystem(loc)[1] for loc in locations], PyFileSystem(FSSpecHandler(fs))


def adopt_staged_remote(staging: str, output: str) -> list[str]:
    """Copy the whole Parquet objects of a remote staging folder to final part names, then
    delete them; empty or unreadable ones are deleted. Returns the adopted parts."""
    adopted = []
    for path in storage.list_files(staging):
        name = path.rsplit("/", 1)[-1]
        try:
            with storage.open_read(path) as f:
                rows = pq.ParquetFile(f).metadata.num_rows
        except (pa.ArrowException, OSError):
            storage.delete(path)
            continue
        if rows == 0:
            storage.delete(path)
            continue
        stem = name[: -len(".parquet")] if name.endswith(".parquet") else name
        target = storage.join(output, f"{PART_PREFIX}ray-{stem}.parquet")
        storage.copy(path, target)
        storage.delete(path)
        adopted.append(target)
    return adopted
