"""Export an output folder's rows as files: SRT, WebVTT, plain text, TSV, JSON; one per row.

Streams over the committed parts (record batches, never a whole part), so it works on a folder a
run is still writing, and on any size. Files are named from the row's id made safe for file
systems: characters other than letters, digits, `.`, `-` and `_` become `_`, and a name that had
to change, is too long, or clashes with another (also when only letter case differs) gets a short
hash of the id, so two ids never share a file. Error rows get no file; they are counted.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from engine.errors import EngineError, OutputError
from engine.io import storage

FORMATS = ("srt", "vtt", "txt", "tsv", "json")
ROWS_PER_READ = 256
MAX_NAME_CHARS = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
             *(f"lpt{i}" for i in range(10))}


class ExportError(EngineError):
    """The output cannot be exported as asked."""


@dataclass(frozen=True, slots=True)
class Cue:
    """One subtitle: a segment, or a word with `words`."""

    start_s: float
    end_s: float
    text: str


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


@dataclass
class FileNamer:
    """Safe, unique file names from ids (remembers 16 bytes per name it handed out)."""

    _taken: dict[bytes, bytes] = field(default_factory=dict)  # name digest -> id digest
    renamed: int = 0

    def __call__(self, item_id: str) -> str:
        owner = _digest(item_id)
        safe = _UNSAFE.sub("_", item_id).lstrip(".")[:MAX_NAME_CHARS] or "_"
        changed = safe != item_id or safe.split(".")[0].lower() in _RESERVED
        key = _digest(safe.casefold())
        if changed or self._taken.get(key, owner) != owner:
            safe = f"{safe}-{hashlib.blake2b(item_id.encode(), digest_size=4).hexdigest()}"
            key = _digest(safe.casefold())
            self.renamed += 1
        self._taken[key] = owner  # the same id again (an unsettled folder) keeps its name
        return safe


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()


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
    if not parts:
        raise ExportError(f"{storage.redact(output_dir)} has no Parquet parts to export "
                          "(not a transcription output, or nothing committed yet)")
    storage.make_dirs(target_dir)
    summary = ExportSummary(formats=tuple(dict.fromkeys(formats)),
                            target=storage.redact(target_dir))  # shown: no secret
    namer = FileNamer()
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
    """The committed Parquet parts of a folder (readers skip names starting with `_` or `.`)."""
    if not storage.is_dir(output_dir):
        raise ExportError(f"output folder {storage.redact(output_dir)} does not exist")
    return [p for p in storage.list_files(output_dir)
            if p.endswith(".parquet") and not _basename(p).startswith(("_", "."))]


def _basename(location: str) -> str:
    return location.rstrip("/").rsplit("/", 1)[-1]


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
    """A row's cues in time order, each ending no earlier than it starts."""
    if words:
        if row.get("words") is None and row.get("segments"):
            raise ExportError(f"row {row['id']!r} has no word timings; transcribe with word "
                              "timestamps to export word cues")
        raw = [(w["start_s"], w["end_s"], w["word"]) for w in row.get("words") or ()]
    else:
        raw = [(s["start_s"], s["end_s"], s["text"]) for s in row.get("segments") or ()]
    out = [Cue(float(start), max(float(start), float(end)), " ".join(text.split()))
           for start, end, text in raw if text and text.strip()]
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
        f"{int(round(c.start_s * 1000))}\t{int(round(c.end_s * 1000))}\t{c.text}"
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
