"""The one audio reader: an item's source (local file, object-store URI or bytes) decoded to
float32 mono at 16 kHz, its `start_s`..`end_s` region, in pieces or whole.

soundfile (libsndfile) reads 16 kHz WAV/FLAC quickly; PyAV (FFmpeg) decodes and resamples the
rest: other rates, MP3, Ogg/Opus, AAC/M4A, a video's audio track, and files whose extension lies
about their content, exactly as faster-whisper's `decode_audio` does, so transcripts match it.
Unlike faster-whisper's decoder, a corrupt frame or a stream cut short is an error, not silently
dropped audio. A remote file is streamed from its store in ranges through `engine.io.storage`
(no local copy). Both the whole-file path (`audio.decode`) and the windowed path
(`windows.decode_windows`) read through here (issue 25 item 4).
"""

from __future__ import annotations

import errno
import io
import os
import re
import stat
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np

from engine.errors import AudioDecodeError, StorageReadError
from engine.io import storage
from engine.prepare.integrity import DamagedAudio, check_container
from engine.types import AudioItem

SAMPLE_RATE_HZ = 16000
READ_BLOCK_SAMPLES = 10000 * 512  # libsndfile's blocks: 320 s at 16 kHz
REMOTE_READ_BYTES = 1 << 20  # one ranged GET per MiB of a remote file
# libsndfile's report on a WAV whose data chunk is shorter than its header says
_SHORT_DATA = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_EXACT_LENGTH_FORMATS = {"WAV", "WAVEX", "FLAC", "AIFF", "W64", "RF64", "CAF"}  # not MP3/Ogg
_STREAMING_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF}  # writers that never patched the header


class TruncatedAudio(ValueError):
    """The file ends before its header says it should: not worth a second decoder."""


def read(item: AudioItem) -> np.ndarray:
    """The item's samples (its region when given), whole.

    Raises:
        AudioDecodeError: missing, empty, truncated, damaged or non-audio input.
        StorageReadError: a remote read that kept failing.
    """
    pieces = list(read_pieces(item))
    if not pieces:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(pieces) if len(pieces) > 1 else np.ascontiguousarray(pieces[0])


def read_pieces(item: AudioItem) -> Iterator[np.ndarray]:
    """The item's samples (its region when given) in pieces of any size, reading the source
    as they are taken.

    Raises:
        AudioDecodeError: missing, empty, truncated, damaged or non-audio input (while
            iterating).
        StorageReadError: a remote read that kept failing.
    """
    with open_source(item) as source:
        try:
            check_stream(item, source)
            source.seek(0)
            yield from _region(item, _decoded(item, source))
        except AudioDecodeError as e:
            # a remote read that kept failing, which the decoder took for the end of the file
            failure = getattr(getattr(source, "raw", source), "failure", None)
            if failure is not None:
                raise StorageReadError(item.item_id, str(failure)) from e
            raise


def probe_duration_s(item: AudioItem) -> float | None:
    """The length of the item's audio (its region when given) from the file's header (ranged
    reads of a remote file); None when the header does not say or the file cannot be opened
    (reading it reports why)."""
    try:
        with open_source(item) as source:
            duration_s = _header_duration_s(source)
    except Exception:  # noqa: BLE001 - reading the file reports why it cannot be read
        return None
    if duration_s is None:
        return None
    end_s = duration_s if item.end_s is None else min(item.end_s, duration_s)
    return max(0.0, end_s - (item.start_s or 0.0))


def open_source(item: AudioItem) -> BinaryIO:
    """The item's bytes as a file: in memory, a local file, or a remote one read in ranges.

    Raises:
        AudioDecodeError: no source, an empty one, or a local path that is no regular file.
        StorageReadError: the store cannot be reached.
    """
    if item.audio_bytes is not None:
        if len(item.audio_bytes) == 0:
            raise AudioDecodeError(item.item_id, f"{item.source} is empty (0 bytes)")
        return io.BytesIO(item.audio_bytes)
    if item.path is None:
        raise AudioDecodeError(item.item_id, f"row {item.item_id} has neither a path nor bytes")
    if storage.is_uri(item.path):
        return _open_remote(item, item.path)
    check_local_file(item, item.path)
    return open(item.path, "rb")


def _open_remote(item: AudioItem, location: str) -> BinaryIO:
    """The file streamed from its store in ranges (no local copy), buffered for the decoders."""
    try:
        reader = storage.RetryingReader(location)
    except FileNotFoundError as e:
        raise AudioDecodeError(item.item_id, f"file not found: {storage.redact(location)}") from e
    except storage.StorageUnavailable as e:
        raise StorageReadError(item.item_id, str(e)) from e
    except OSError as e:
        raise AudioDecodeError(
            item.item_id, f"cannot read {storage.redact(location)}: {describe(e)}") from e
    if reader.size == 0:
        reader.close()
        raise AudioDecodeError(item.item_id, f"{storage.redact(location)} is empty (0 bytes)")
    return io.BufferedReader(reader, buffer_size=REMOTE_READ_BYTES)


def check_local_file(item: AudioItem, path: str) -> None:
    """Refuse a local path that is no regular file, saying what it is (permanent); a missing
    file is transient (a rerun looks again: it may not be there yet).

    Raises:
        AudioDecodeError: an empty path, a folder, a FIFO, a device or socket, a symlink loop,
            a missing or empty file.
    """
    if path == "":
        raise AudioDecodeError(item.item_id, f"row {item.item_id} has an empty path; give "
                               "the audio file's path")
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise AudioDecodeError(item.item_id, f"{path} is a symlink loop, not an audio "
                                   "file; fix the link") from None
        if e.errno in (errno.ENOENT, errno.ENOTDIR):  # from an OSError: transient
            raise AudioDecodeError(item.item_id, f"file not found: {path}") from e
        raise AudioDecodeError(item.item_id, f"cannot read {path}: {e.strerror}") from e
    if not stat.S_ISREG(mode):
        raise AudioDecodeError(item.item_id, f"{path} is {_file_type(mode)}, not an audio "
                               "file; give a file's path")
    if os.path.getsize(path) == 0:
        raise AudioDecodeError(item.item_id, f"{path} is empty (0 bytes)")


def _file_type(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def check_stream(item: AudioItem, source: BinaryIO) -> None:
    """Refuse an Ogg or MP3 stream cut short (FFmpeg decodes its first part without a word).

    Raises:
        AudioDecodeError: the stream ends early (permanent).
    """
    source.seek(0)
    data = source.getvalue() if isinstance(source, io.BytesIO) else source.read()
    try:
        check_container(data)
    except DamagedAudio as e:
        raise AudioDecodeError(item.item_id, f"{item.source}: {e}") from e


def _header_duration_s(source: BinaryIO) -> float | None:
    import soundfile

    try:
        info = soundfile.info(source)
        return float(info.frames) / float(info.samplerate)
    except Exception:  # noqa: BLE001 - not libsndfile's format: ask FFmpeg
        pass
    import av

    source.seek(0)
    with av.open(source, mode="r", metadata_errors="ignore") as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        return container.duration / 1e6 if container.duration else None


def _decoded(item: AudioItem, source: BinaryIO) -> Iterator[np.ndarray]:
    """Decoded samples in pieces of any size: libsndfile when it reads the file at 16 kHz
    exactly, FFmpeg otherwise."""
    try:
        pieces = _soundfile_pieces(source)
    except TruncatedAudio as e:
        raise AudioDecodeError(item.item_id, f"cannot decode {item.source}: {e}") from e
    except Exception:  # noqa: BLE001 - libsndfile does not know the format: FFmpeg decides
        pieces = None
    if pieces is not None:
        try:
            yield from pieces
        except TruncatedAudio as e:
            raise AudioDecodeError(item.item_id, f"cannot decode {item.source}: {e}") from e
        return
    source.seek(0)
    try:
        yield from _pyav_pieces(source)
    except Exception as e:
        raise AudioDecodeError(
            item.item_id, f"cannot decode {item.source}: {describe(e)} "
            "(not an audio file, or corrupt)"
        ) from e


def _soundfile_pieces(source: BinaryIO) -> Iterator[np.ndarray] | None:
    import soundfile

    f = soundfile.SoundFile(source)
    try:
        _check_wav_complete(f.extra_info)
    except TruncatedAudio:
        f.close()
        raise
    if f.samplerate != SAMPLE_RATE_HZ or f.format not in _EXACT_LENGTH_FORMATS:
        f.close()
        return None
    return _soundfile_blocks(f)


def _soundfile_blocks(f: Any) -> Iterator[np.ndarray]:
    with f:
        expected, found = f.frames, 0
        for block in f.blocks(blocksize=READ_BLOCK_SAMPLES, dtype="float32", always_2d=True):
            found += block.shape[0]
            yield block.mean(axis=1, dtype=np.float32)
    if found < expected:
        raise TruncatedAudio(f"truncated: header promises {expected} frames, found {found}")


def _check_wav_complete(info: str) -> None:
    short = _SHORT_DATA.search(info)
    if short:
        declared, present = int(short.group(1)), int(short.group(2))
        if declared > present and declared not in _STREAMING_SIZES:
            raise TruncatedAudio(f"truncated: header promises {declared} bytes of audio, "
                                 f"the file holds {present}")


def _pyav_pieces(source: BinaryIO) -> Iterator[np.ndarray]:
    import av

    with av.open(source, mode="r", metadata_errors="ignore") as container:
        if not container.streams.audio:
            raise ValueError("no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE_HZ)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                yield out.to_ndarray().reshape(-1).astype(np.float32) / 32768.0
        for out in resampler.resample(None):
            yield out.to_ndarray().reshape(-1).astype(np.float32) / 32768.0


def _region(item: AudioItem, pieces: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """The pieces cut to the item's `start_s`..`end_s` region (all of them without one)."""
    if item.start_s is None and item.end_s is None:
        yield from pieces
        return
    start = int(round((item.start_s or 0.0) * SAMPLE_RATE_HZ))
    end = None if item.end_s is None else int(round(item.end_s * SAMPLE_RATE_HZ))
    if start < 0 or (end is not None and end <= start):
        raise AudioDecodeError(
            item.item_id, f"{item.source}: region start_s={item.start_s} end_s={item.end_s} "
            "is empty; start_s must be >= 0 and below end_s"
        )
    position = 0
    for piece in pieces:
        first, last = position, position + piece.size
        position = last
        if last <= start:
            continue
        yield piece[max(0, start - first): piece.size if end is None else max(0, end - first)]
        if end is not None and last >= end:
            return


def describe(error: Exception) -> str:
    """An exception's first line, short (for a row's error message)."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:200]
