"""Decode one item's audio to float32 mono at 16 kHz; nothing else.

soundfile (libsndfile) reads 16 kHz WAV/FLAC quickly; PyAV (FFmpeg) decodes and resamples the
rest: other rates, MP3, Ogg/Opus, AAC/M4A, a video's audio track, and files whose extension lies
about their content. Unlike faster-whisper's decoder, a corrupt frame is an error, not silently
dropped audio.
"""

from __future__ import annotations

import errno
import io
import os
import re
import stat
from typing import BinaryIO

import numpy as np

from engine.errors import AudioDecodeError, StorageReadError
from engine.io import storage
from engine.prepare.integrity import DamagedAudio, check_container, check_samples
from engine.types import AudioItem

SAMPLE_RATE_HZ = 16000
REMOTE_READ_BYTES = 1 << 20  # one ranged GET per MiB of a remote file
# libsndfile's report on a WAV whose data chunk is shorter than its header says
_SHORT_DATA = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_EXACT_LENGTH_FORMATS = {"WAV", "WAVEX", "FLAC", "AIFF", "W64", "RF64", "CAF"}  # not MP3/Ogg
_STREAMING_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF}  # writers that never patched the header


def decode(item: AudioItem, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Decode an item's audio (its `start_s`..`end_s` region when given).

    Audio already at 16 kHz is read by soundfile; everything else goes through FFmpeg's decoder
    and resampler exactly as faster-whisper's `decode_audio` does, so transcripts match it.

    Raises:
        AudioDecodeError: missing, empty, truncated, damaged or non-audio input.
    """
    with _open_source(item) as source:
        try:
            samples = _decode_source(item, source, sample_rate_hz)
            check_stream(item, source)
        except AudioDecodeError as e:
            # a remote read that kept failing, which the decoder took for the end of the file
            failure = getattr(getattr(source, "raw", source), "failure", None)
            if failure is not None:
                raise StorageReadError(item.item_id, str(failure)) from e
            raise
    samples = _cut_region(item, samples, sample_rate_hz)
    if samples.size == 0:
        raise AudioDecodeError(item.item_id, f"{item.source} holds no audio samples")
    check_sound(item, samples)
    return samples


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


def check_sound(item: AudioItem, samples: np.ndarray) -> None:
    """Refuse samples that are NaN/Inf, far past full scale or mostly clipped.

    Raises:
        AudioDecodeError: what is wrong with the samples (permanent).
    """
    try:
        check_samples(samples)
    except DamagedAudio as e:
        raise AudioDecodeError(item.item_id, f"{item.source} {e}") from e


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


def _decode_source(item: AudioItem, source: BinaryIO, sample_rate_hz: int) -> np.ndarray:
    try:
        samples = _read_soundfile(source, sample_rate_hz)
    except TruncatedAudio as e:
        raise AudioDecodeError(item.item_id, f"cannot decode {item.source}: {e}") from e
    except Exception:  # libsndfile does not know the format: FFmpeg decides
        samples = None
    if samples is None:
        source.seek(0)
        try:
            samples = _read_pyav(source, sample_rate_hz)
        except Exception as e:
            raise AudioDecodeError(
                item.item_id, f"cannot decode {item.source}: {_describe(e)} "
                "(not an audio file, or corrupt)"
            ) from e
    return samples


def _open_source(item: AudioItem) -> BinaryIO:
    if item.audio_bytes is not None:
        if len(item.audio_bytes) == 0:
            raise AudioDecodeError(item.item_id, f"{item.source} is empty (0 bytes)")
        return io.BytesIO(item.audio_bytes)
    if item.path is None:
        raise AudioDecodeError(item.item_id, f"row {item.item_id} has neither a path nor bytes")
    if storage.is_uri(item.path):
        return _open_remote(item, item.path)
    check_local_file(item, item.path)
    with open(item.path, "rb") as f:
        return io.BytesIO(f.read())


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
            item.item_id, f"cannot read {storage.redact(location)}: {_describe(e)}") from e
    if reader.size == 0:
        reader.close()
        raise AudioDecodeError(item.item_id, f"{storage.redact(location)} is empty (0 bytes)")
    return io.BufferedReader(reader, buffer_size=REMOTE_READ_BYTES)


def _read_soundfile(source: BinaryIO, sample_rate_hz: int) -> np.ndarray | None:
    """The samples when libsndfile reads the file at the target rate; None to use FFmpeg."""
    import soundfile

    with soundfile.SoundFile(source) as f:
        _check_wav_complete(f.extra_info)
        if f.samplerate != sample_rate_hz or f.format not in _EXACT_LENGTH_FORMATS:
            return None
        expected = f.frames
        data = f.read(dtype="float32", always_2d=True)
    if data.shape[0] < expected:
        raise TruncatedAudio(f"truncated: header promises {expected} frames, found {data.shape[0]}")
    mono: np.ndarray = data.mean(axis=1, dtype=np.float32)
    return mono


def _check_wav_complete(info: str) -> None:
    short = _SHORT_DATA.search(info)
    if short:
        declared, present = int(short.group(1)), int(short.group(2))
        if declared > present and declared not in _STREAMING_SIZES:
            raise TruncatedAudio(f"truncated: header promises {declared} bytes of audio, "
                                 f"the file holds {present}")


class TruncatedAudio(ValueError):
    """The file ends before its header says it should: not worth a second decoder."""


def _read_pyav(source: BinaryIO, sample_rate_hz: int) -> np.ndarray:
    import av

    pieces: list[np.ndarray] = []
    with av.open(source, mode="r", metadata_errors="ignore") as container:
        if not container.streams.audio:
            raise ValueError("no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate_hz)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                pieces.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            pieces.append(out.to_ndarray().reshape(-1))
    if not pieces:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(pieces).astype(np.float32) / 32768.0


def _cut_region(item: AudioItem, samples: np.ndarray, rate: int) -> np.ndarray:
    if item.start_s is None and item.end_s is None:
        return samples
    start = int(round((item.start_s or 0.0) * rate))
    end = samples.size if item.end_s is None else int(round(item.end_s * rate))
    if not 0 <= start < end:
        raise AudioDecodeError(
            item.item_id, f"{item.source}: region start_s={item.start_s} end_s={item.end_s} "
            "is empty; start_s must be >= 0 and below end_s"
        )
    return samples[start:end]


def _describe(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:200]
