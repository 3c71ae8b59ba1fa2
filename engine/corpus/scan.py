"""Build a manifest from a folder of audio: one row per file, probed from its header.

Files are found by walking the folder (include/exclude globs), probed in a thread pool (headers
only, no full decode) and written to Parquet in row groups as they come, so a folder of a million
files never sits in memory. A file that cannot be probed stays in the manifest with its `error`.
"""

from __future__ import annotations

import fnmatch
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from engine.corpus.references import load_reference_table
from engine.errors import ConfigError

AUDIO_PATTERNS = ("*.wav", "*.flac", "*.mp3", "*.ogg", "*.opus", "*.m4a", "*.aac", "*.wma",
                  "*.aiff", "*.aif", "*.webm", "*.mp4", "*.mkv", "*.mov")
SCHEMA = pa.schema([
    ("id", pa.string()), ("path", pa.string()), ("duration_s", pa.float64()),
    ("sample_rate_hz", pa.int32()), ("channels", pa.int32()), ("format", pa.string()),
    ("size_bytes", pa.int64()), ("error", pa.string()), ("reference", pa.string()),
])
ROWS_PER_GROUP = 10_000


@dataclass(frozen=True)
class ScanOptions:
    """What to scan: audio files (AUDIO_PATTERNS), narrowed by `include`, less `exclude`.

    Attributes:
        references: Read `name.txt` sidecars and LibriSpeech `*.trans.txt` listings.
        reference_table: A TSV, CSV or Parquet table of references (`engine.corpus.references`);
            its ids become the manifest's ids for the files it names.
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    references: bool = False
    workers: int = 8
    reference_table: str | None = None


@dataclass
class ScanSummary:
    files: int = 0
    audio_s: float = 0.0
    errors: int = 0
    with_reference: int = 0
    formats: Counter[str] = field(default_factory=Counter)

    def add(self, row: dict[str, Any]) -> None:
        self.files += 1
        self.audio_s += row["duration_s"] or 0.0
        self.errors += row["error"] is not None
        self.with_reference += row["reference"] is not None
        self.formats[row["format"] or "unknown"] += 1


def find_audio(root: str, options: ScanOptions) -> Iterator[tuple[str, str]]:
    """(absolute path, path relative to root) of matching files, in a stable sorted order."""
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            rel = os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")
            if not _matches(name.lower(), rel, AUDIO_PATTERNS) or (
                    options.include and not _matches(name, rel, options.include)):
                continue
            if any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in options.exclude):
                continue
            yield os.path.join(folder, name), rel


def _matches(name: str, rel: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(rel, p) for p in patterns)


def probe(path: str) -> dict[str, Any]:
    """Duration, rate, channels and format from the file's header, or an `error`."""
    info: dict[str, Any] = {"size_bytes": os.path.getsize(path), "error": None,
                            "duration_s": None, "sample_rate_hz": None, "channels": None,
                            "format": None}
    if info["size_bytes"] == 0:
        return {**info, "error": "empty file (0 bytes)"}
    try:
        import soundfile

        sf_info = soundfile.info(path)
        if sf_info.format not in ("MPEG",):  # libsndfile's MP3 length is an estimate
            return {**info, "duration_s": sf_info.frames / sf_info.samplerate,
                    "sample_rate_hz": sf_info.samplerate, "channels": sf_info.channels,
                    "format": sf_info.format.lower()}
    except Exception:
        pass
    try:
        return {**info, **_probe_pyav(path)}
    except Exception as e:
        return {**info, "error": f"cannot read the header: {str(e).splitlines()[0][:160]}"}


def _probe_pyav(path: str) -> dict[str, Any]:
    import av

    with av.open(path, metadata_errors="ignore") as container:
        if not container.streams.audio:
            raise ValueError("no audio stream")
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            raise ValueError("no duration in the header")
        return {"duration_s": duration, "sample_rate_hz": stream.rate,
                "channels": stream.channels, "format": container.format.name.split(",")[0]}


class ReferenceFinder:
    """Reference text from `name.txt` beside the audio, or a LibriSpeech `*.trans.txt` listing."""

    def __init__(self) -> None:
        self._folder: str | None = None
        self._listing: dict[str, str] = {}

    def __call__(self, path: str) -> str | None:
        stem, _ = os.path.splitext(path)
        if os.path.isfile(stem + ".txt"):
            with open(stem + ".txt", encoding="utf-8") as f:
                return f.read().strip() or None
        folder = os.path.dirname(path)
        if folder != self._folder:  # walking is folder by folder: keep one listing at a time
            self._folder, self._listing = folder, _read_listings(folder)
        return self._listing.get(os.path.basename(stem))


def _read_listings(folder: str) -> dict[str, str]:
    listing = {}
    for name in os.listdir(folder):
        if name.endswith(".trans.txt"):
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                for line in f:
                    key, _, text = line.strip().partition(" ")
                    if key:
                        listing[key] = text.strip()
    return listing


def scan_rows(root: str, manifest_dir: str, options: ScanOptions) -> Iterator[dict[str, Any]]:
    """Manifest rows for every audio file under `root`, in order, probed in parallel."""
    if not os.path.isdir(root):
        raise ConfigError(f"{root} is not a folder")
    references = References(options)
    with ThreadPoolExecutor(max_workers=options.workers) as pool:
        window = options.workers * 16
        pending: list[tuple[str, str, Any]] = []
        for path, rel in find_audio(root, options):
            pending.append((path, rel, pool.submit(probe, path)))
            if len(pending) >= window:
                yield from _finish(pending[: window // 2], manifest_dir, references)
                del pending[: window // 2]
        yield from _finish(pending, manifest_dir, references)


class References:
    """A file's id and reference: from the references table, then sidecars, as asked."""

    def __init__(self, options: ScanOptions) -> None:
        self._table = (load_reference_table(options.reference_table)
                       if options.reference_table else None)
        self._sidecars = ReferenceFinder() if options.references else None
        self._table_path = options.reference_table or ""
        self._ids_taken: dict[str, str] = {}  # a table id -> the file that took it

    def __call__(self, path: str, rel: str) -> tuple[str, str | None]:
        found = self._table.lookup(rel) if self._table is not None else None
        if found is not None and found.item_id is not None:
            other = self._ids_taken.setdefault(found.item_id, rel)
            if other != rel:
                raise ConfigError(
                    f"references table {self._table_path}: id "
                    f"{found.item_id!r} matches two files, {other} and {rel}; name the file "
                    "in a file column, or leave one out")
            return found.item_id, found.text
        if found is not None:
            return rel, found.text
        return rel, self._sidecars(path) if self._sidecars is not None else None


def _finish(batch: Iterable[tuple[str, str, Any]], manifest_dir: str,
            references: References) -> Iterator[dict[str, Any]]:
    for path, rel, future in batch:
        item_id, reference = references(path, rel)
        yield {"id": item_id, "path": os.path.relpath(path, manifest_dir).replace(os.sep, "/"),
               **future.result(), "reference": reference}


def write_manifest(rows: Iterable[dict[str, Any]], output: str,
                   on_row: Any = None) -> ScanSummary:
    """Stream rows into a Parquet file (row group by row group), atomically renamed at the end."""
    summary = ScanSummary()
    tmp = os.path.join(os.path.dirname(os.path.abspath(output)),
                       f".{os.path.basename(output)}.{os.getpid()}.tmp")
    buffer: list[dict[str, Any]] = []
    try:
        with pq.ParquetWriter(tmp, SCHEMA, compression="zstd") as writer:
            for row in rows:
                buffer.append(row)
                summary.add(row)
                if on_row is not None:
                    on_row(row)
                if len(buffer) >= ROWS_PER_GROUP:
                    writer.write_table(pa.Table.from_pylist(buffer, schema=SCHEMA))
                    buffer = []
            writer.write_table(pa.Table.from_pylist(buffer, schema=SCHEMA))
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return summary
