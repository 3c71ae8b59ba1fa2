"""Export an output folder's rows as files: SRT, WebVTT, plain text, TSV, JSON; one per row.

Streams over the committed parts (record batches, never a whole part), so it works on a folder a
run is still writing, and on any size. Subtitle cues are made readable (`subtitles`). Files are
named from the row's id (see `FileNamer`). Error rows get no file; they are counted.
"""

from __future__ import annotations

import hashlib
import json
import re
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from engine.corpus.scan import AUDIO_PATTERNS
from engine.corpus.subtitles import Cue, readable_cues
from engine.errors import EngineError, OutputError
from engine.io import storage
from engine.io.writer import part_files

FORMATS = ("srt", "vtt", "txt", "tsv", "json")
ROWS_PER_READ = 256
MAX_NAME_CHARS = 120
AUDIO_EXTENSIONS = {p.removeprefix("*.") for p in AUDIO_PATTERNS}
TRANSCRIPT_COLUMNS = ("id", "status", "text", "segments")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
             *(f"lpt{i}" for i in range(10))}


class ExportError(EngineError):
    """The output cannot be exported as asked."""


@dataclass
class ExportSummary:
    """What an export wrote."""

    rows: int = 0
    files: int = 0
    skipped_errors: int = 0
    renamed: int = 0  # ids whose file name had to change
    formats: tuple[str, ...] = ()
    target: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "files": self.files, "skipped_errors": self.skipped_errors,
                "renamed": self.renamed, "formats": list(self.formats), "target": self.target}


class FileNamer:
    """File names from ids: the id without its audio extension (`talk.wav` -> `talk`), made safe
    for file systems (characters other than letters, digits, `.`, `-`, `_` become `_`).

    The collision rule, decided over all the folder's ids first so that a name never depends on
    the order of the rows: a name that two ids would share (also when only letter case differs:
    `talk.wav` and `talk.mp3`, `a/b.wav` and `a_b.wav`) is not used; those ids keep their
    extension (`talk.wav`, `talk.mp3`), and where that clashes too, or the name is reserved on
    Windows or too long, a short hash of the id is added. Holds 16 bytes per id while counting.
    """

    def __init__(self, ids: Iterable[str]) -> None:
        self.renamed = 0
        self._shared = _shared_names(ids)

    def __call__(self, item_id: str) -> str:
        full = _safe(item_id)
        stem = _strip_audio_extension(full)
        if _key(stem) not in self._shared and _allowed(stem):
            return stem
        if full != stem and _key(full) not in self._shared and _allowed(full):
            return full
        self.renamed += 1
        return f"{full}-{hashlib.blake2b(item_id.encode(), digest_size=4).hexdigest()}"


def _safe(item_id: str) -> str:
    return _UNSAFE.sub("_", item_id).lstrip(".")[:MAX_NAME_CHARS] or "_"


def _strip_audio_extension(name: str) -> str:
    stem, dot, extension = name.rpartition(".")
    return stem if dot and stem and extension.lower() in AUDIO_EXTENSIONS else name


def _allowed(name: str) -> bool:
    return name.split(".")[0].lower() not in _RESERVED and len(name) < MAX_NAME_CHARS


def _key(name: str, fold: bool = True) -> int:
    """A 64-bit digest of a name, by default regardless of letter case."""
    text = name.casefold() if fold else name
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(),
                          "little")


def _shared_names(ids: Iterable[str]) -> set[int]:
    """Names (as `_key`s) that more than one distinct id could take: its stem, or its whole
    safe id when that differs."""
    import numpy as np

    owners, names = array("Q"), array("Q")
    for item_id in ids:
        full = _safe(item_id)
        stem = _strip_audio_extension(full)
        for name in (stem, full) if full != stem else (stem,):
            owners.append(_key(item_id, fold=False))
            names.append(_key(name))
    pairs = np.unique(np.stack([np.frombuffer(owners, np.uint64),
                                np.frombuffer(names, np.uint64)]), axis=1)  # an id seen twice
    keys, counts = np.unique(pairs[1], return_counts=True)
    return {int(k) for k in keys[counts > 1]}


def export(output_dir: str, target_dir: str, formats: tuple[str, ...],
           words: bool = False) -> ExportSummary:
    """Write one file per row and format of `output_dir` into `target_dir` (local or a URI).

    Args:
        output_dir: A transcription output folder (complete or still being written).
        target_dir: Where the files go; created if missing.
        formats: Some of `FORMATS`.
        words: Subtitles with one cue per word (needs the `words` column filled).

    Raises:
        ExportError: unknown format, no parts, or word cues asked for rows without word timings.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ExportError(f"unknown export format(s) {', '.join(unknown) or '(none)'}; "
                          f"choose from {', '.join(FORMATS)}")
    parts = list_parts(output_dir)
    _make_target(target_dir)
    summary = ExportSummary(formats=tuple(dict.fromkeys(formats)),
                            target=storage.redact(target_dir))  # shown: no secret
    namer = FileNamer(_iter_ids(parts))
    for row in iter_rows(parts):
        summary.rows += 1
        if row.get("status") == "error":
            summary.skipped_errors += 1
            continue
        name = namer(str(row["id"]))
        for fmt in summary.formats:
            data = render(fmt, row, words).encode("utf-8")
            storage.write_bytes(storage.join(target_dir, f"{name}.{fmt}"), data)
            summary.files += 1
    summary.renamed = namer.renamed
    return summary


def list_parts(output_dir: str) -> list[str]:
    """The committed transcript parts of a folder (`part-*.parquet`, with a transcript schema).

    Raises:
        ExportError: the folder does not exist or holds no transcripts (an audio or manifest
            folder, or a run that committed nothing yet).
    """
    if not storage.is_dir(output_dir):
        raise ExportError(f"output folder {storage.redact(output_dir)} does not exist")
    parts = part_files(output_dir)
    if not parts:
        raise ExportError(f"{storage.redact(output_dir)} holds no transcripts to export (no "
                          "part-*.parquet: give the output folder of a transcription run)")
    with storage.open_read(parts[0]) as f:
        names = pq.ParquetFile(f).schema_arrow.names
    missing = [c for c in TRANSCRIPT_COLUMNS if c not in names]
    if missing:
        raise ExportError(f"{storage.redact(parts[0])} is not a transcript part (no column "
                          f"{', '.join(missing)}); give the output folder of a transcription run")
    return parts


def _make_target(target_dir: str) -> None:
    if not storage.is_dir(target_dir) and storage.exists(target_dir):
        raise ExportError(f"export target {storage.redact(target_dir)} is a file; give a folder "
                          "(one file per row and format is written into it)")
    try:
        storage.make_dirs(target_dir)
    except OSError as e:
        raise ExportError(f"cannot create the export folder {storage.redact(target_dir)}: "
                          f"{e.strerror or e}") from e


def _iter_ids(parts: list[str]) -> Iterator[str]:
    for part in parts:
        try:
            with storage.open_read(part) as f:
                for batch in pq.ParquetFile(f).iter_batches(batch_size=65_536, columns=["id"]):
                    yield from (str(i) for i in batch.column(0).to_pylist())
        except FileNotFoundError:
            continue  # rewritten by a run settling the folder meanwhile


def iter_rows(parts: list[str]) -> Iterator[dict[str, Any]]:
    """Every row of the parts, a record batch at a time."""
    for part in parts:
        try:
            with storage.open_read(part) as f:
                for batch in pq.ParquetFile(f).iter_batches(batch_size=ROWS_PER_READ):
                    yield from batch.to_pylist()
        except FileNotFoundError:
            continue  # rewritten by a run settling the folder meanwhile: its rows moved
        except (pa.ArrowException, OSError) as e:
            raise OutputError(f"part {storage.redact(part)} cannot be read: "
                              f"{storage.redact(str(e))}") from e


def cues(row: dict[str, Any], words: bool) -> list[Cue]:
    """A row's cues in time order, each ending no earlier than it starts: readable cues
    (`subtitles.readable_cues`), or one per word with `words`."""
    if not words:
        return readable_cues(row)
    if row.get("words") is None and row.get("segments"):
        raise ExportError(f"row {row['id']!r} has no word timings; transcribe with word "
                          "timestamps to export word cues")
    out = [Cue(float(w["start_s"]), max(float(w["start_s"]), float(w["end_s"])),
               " ".join(w["word"].split()))
           for w in row.get("words") or () if w["word"] and w["word"].strip()]
    return sorted(out, key=lambda c: (c.start_s, c.end_s))


def timestamp(seconds: float, millis_separator: str) -> str:
    """`HH:MM:SS,mmm` (SRT) or `HH:MM:SS.mmm` (WebVTT)."""
    total_ms = max(0, int(round(seconds * 1000)))
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{millis_separator}{ms:03d}"


def to_srt(row: dict[str, Any], words: bool) -> str:
    blocks = [f"{n}\n{timestamp(c.start_s, ',')} --> {timestamp(c.end_s, ',')}\n{c.text}\n"
              for n, c in enumerate(cues(row, words), start=1)]
    return "\n".join(blocks)


def to_vtt(row: dict[str, Any], words: bool) -> str:
    blocks = [f"{timestamp(c.start_s, '.')} --> {timestamp(c.end_s, '.')}\n"
              f"{c.text.replace('-->', '->')}\n" for c in cues(row, words)]
    return "WEBVTT\n\n" + "\n".join(blocks)


def to_txt(row: dict[str, Any], words: bool) -> str:
    text = (row.get("text") or "").strip()
    return text + "\n" if text else ""


def to_tsv(row: dict[str, Any], words: bool) -> str:
    """start and end in milliseconds, then the text (as Whisper's own TSV output)."""
    lines = ["start\tend\ttext"] + [
        f"{int(round(c.start_s * 1000))}\t{int(round(c.end_s * 1000))}\t"
        f"{c.text.replace(chr(10), ' ')}"
        for c in cues(row, words)]
    return "\n".join(lines) + "\n"


def to_json(row: dict[str, Any], words: bool) -> str:
    """The whole row (passthrough columns included); bytes become their length."""
    return json.dumps(row, ensure_ascii=False, indent=2, default=_json_default) + "\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    return str(value)


RENDERERS: dict[str, Callable[[dict[str, Any], bool], str]] = {
    "srt": to_srt, "vtt": to_vtt, "txt": to_txt, "tsv": to_tsv, "json": to_json,
}


def render(fmt: str, row: dict[str, Any], words: bool) -> str:
    return RENDERERS[fmt](row, words)
