"""Damage that decoders let through: streams that end early, samples that are not sound.

FFmpeg decodes an MP3 or Ogg file cut in the middle without a word (it stops at the last whole
frame), so the container is walked here: an Ogg stream must end with a whole page flagged
end-of-stream, an MP3 with a whole frame (and as many frames as its Xing/Info header counts).
WAV and FLAC need no walk: libsndfile already reports a short data chunk (`audio`).

Decoded samples must be finite (a float WAV may hold NaN or Inf), within a sane distance of full
scale (float audio at 1e6 is not audio scaled to [-1, 1]), and not mostly clipped (what such
audio becomes once an integer decoder saturates it). Issue 27 item 3.
"""

from __future__ import annotations

import numpy as np

MAX_PEAK = 10.0  # 20 dB past full scale: float audio beyond this is not scaled as audio
MAX_CLIPPED_FRACTION = 0.25  # a quarter of the samples at full scale: saturated, not speech
_FULL_SCALE = 32767 / 32768  # what an int16 decoder's samples reach when saturated
_MP3_BITRATES_KBPS = {  # (MPEG-1, layer) and (MPEG-2/2.5, layer): index 1..14
    (1, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (1, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (1, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (2, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (2, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_RATES_HZ = {1: (44100, 48000, 32000), 2: (22050, 24000, 16000), 25: (11025, 12000, 8000)}


class DamagedAudio(ValueError):
    """The file or its samples are damaged; the message says how."""


def check_samples(samples: np.ndarray) -> None:
    """Refuse samples that are not finite, far past full scale, or mostly clipped.

    Raises:
        DamagedAudio: what is wrong, with the numbers.
    """
    if samples.size == 0:
        return
    finite = np.isfinite(samples)
    if not finite.all():
        bad = int(samples.size - np.count_nonzero(finite))
        raise DamagedAudio(f"holds {bad} NaN or infinite sample(s) (corrupt float audio)")
    peak = float(np.abs(samples).max())
    if peak > MAX_PEAK:
        raise DamagedAudio(f"peaks at {peak:.3g}, far past full scale 1.0 (float audio not "
                           "scaled to [-1, 1]: rescale it)")
    clipped = float(np.count_nonzero(np.abs(samples) >= _FULL_SCALE)) / samples.size
    if clipped > MAX_CLIPPED_FRACTION:
        raise DamagedAudio(f"{clipped:.0%} of its samples are clipped at full scale "
                           "(saturated audio: lower its gain)")


def check_container(data: bytes) -> None:
    """Refuse an Ogg or MP3 file that ends before its stream does; other formats pass.

    Raises:
        DamagedAudio: the stream is cut (where, and what was expected).
    """
    if data[:4] == b"OggS":
        _check_ogg(memoryview(data))
    elif data[:3] == b"ID3" or _mp3_frame_length(memoryview(data), 0) is not None:
        _check_mp3(memoryview(data))


def _check_ogg(data: memoryview) -> None:
    pos, last_flags = 0, 0
    while pos < len(data):
        if bytes(data[pos:pos + 4]) != b"OggS" or pos + 27 > len(data):
            raise DamagedAudio(f"Ogg stream cut or corrupt at byte {pos} of {len(data)}")
        segments = data[pos + 26]
        body = sum(data[pos + 27:pos + 27 + segments])
        end = pos + 27 + segments + body
        if end > len(data):
            raise DamagedAudio(f"truncated: the Ogg page at byte {pos} needs {end} bytes, the "
                               f"file holds {len(data)}")
        last_flags, pos = data[pos + 5], end
    if not last_flags & 0x04:
        raise DamagedAudio("truncated: the Ogg stream ends without its end-of-stream page")


def _check_mp3(data: memoryview) -> None:
    pos = _skip_id3v2(data)
    end = _audio_end(data)
    frames, first, declared = 0, pos, None
    while pos < end:
        length = _mp3_frame_length(data, pos)
        if length is None:
            if frames == 0 and pos - first < 4096:  # junk before the first frame
                pos += 1
                continue
            raise DamagedAudio(f"MP3 stream corrupt at byte {pos} of {len(data)}")
        if pos + length > end:
            raise DamagedAudio(f"truncated: the MP3 frame at byte {pos} needs {length} bytes, "
                               f"{end - pos} are left")
        if frames == 0:
            declared = _xing_frames(data, pos, length)
        frames, pos = frames + 1, pos + length
    if declared is not None and frames - 1 < declared:
        raise DamagedAudio(f"truncated: the MP3 header counts {declared} frames, the file "
                           f"holds {frames - 1}")


def _skip_id3v2(data: memoryview) -> int:
    if bytes(data[:3]) != b"ID3" or len(data) < 10:
        return 0
    size = 0
    for byte in data[6:10]:
        size = (size << 7) | (byte & 0x7F)
    footer = 10 if data[5] & 0x10 else 0
    return 10 + size + footer


def _audio_end(data: memoryview) -> int:
    """Where the frames end: before an ID3v1 tag (and an APE tag before it), if any."""
    end = len(data)
    if end >= 128 and bytes(data[end - 128:end - 125]) == b"TAG":
        end -= 128
    if end >= 32 and bytes(data[end - 32:end - 24]) == b"APETAGEX":
        end -= 32 + int.from_bytes(data[end - 20:end - 16], "little")
    return end


def _mp3_frame_length(data: memoryview, pos: int) -> int | None:
    """The length of the MPEG audio frame at `pos`, or None when no valid header is there."""
    if pos + 4 > len(data) or data[pos] != 0xFF or data[pos + 1] & 0xE0 != 0xE0:
        return None
    version = {3: 1, 2: 2, 0: 25}.get((data[pos + 1] >> 3) & 3)
    layer = 4 - ((data[pos + 1] >> 1) & 3)  # 00 is reserved (and ADTS AAC's)
    rate_index, bitrate_index = (data[pos + 2] >> 2) & 3, data[pos + 2] >> 4
    if version is None or layer == 4 or rate_index == 3 or bitrate_index in (0, 15):
        return None
    table = (1, layer) if version == 1 else (2, 1 if layer == 1 else 2)
    bitrate = _MP3_BITRATES_KBPS[table][bitrate_index - 1] * 1000
    rate = _MP3_RATES_HZ[version][rate_index]
    padding = (data[pos + 2] >> 1) & 1
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4
    per_frame = 72 if layer == 3 and version != 1 else 144
    return per_frame * bitrate // rate + padding


def _xing_frames(data: memoryview, pos: int, length: int) -> int | None:
    """The frame count a Xing/Info or VBRI header in the first frame declares, if any."""
    frame = bytes(data[pos:pos + length])
    for tag in (b"Xing", b"Info"):
        at = frame.find(tag, 4, 64)
        if at >= 0 and len(frame) >= at + 12 and frame[at + 7] & 0x01:
            return int.from_bytes(frame[at + 8:at + 12], "big")
    if frame[36:40] == b"VBRI" and len(frame) >= 50:
        return int.from_bytes(frame[46:50], "big")
    return None
