"""Speech that Silero does not hear: loud stretches between its spans, given back to the model.

Silero's probabilities collapse on telephone-band and reverberant speech: on the long-form set's
phone and room copies whole sentences stay under 0.02 while the clean copy of the same audio is
over 0.5 (issue 24), so about a third of their words never reached the model. Lowering the
threshold cannot fix that. What still tells such speech from silence is its energy in the voice
band (300-3,400 Hz, what a telephone keeps): a stretch between Silero's spans whose energy stands
well above the file's own noise floor is kept as speech too, and the model's no-speech
probability decides what it holds, as it does for every chunk. Stationary noise sits at the
floor and stays out, so silence and noise files still cost no model call.
"""

from __future__ import annotations

import numpy as np

FRAME = 512  # samples per frame: Silero's, so the two views line up
VOICE_BAND_HZ = (300.0, 3400.0)
FLOOR_PERCENTILE = 10  # the file's quietest tenth of frames is its noise floor
MIN_RUN_FRAMES = 8  # 0.26 s at 16 kHz: shorter loud stretches (a click, a door) are not kept
BRIDGE_FRAMES = 10  # 0.32 s: loud stretches closer than this are one


def band_energy_db(frames: np.ndarray, rate_hz: int) -> np.ndarray:
    """Voice-band energy (dB, full scale) of each row of `frames` (FRAME samples each)."""
    window = np.hanning(FRAME).astype(np.float32)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    freqs = np.fft.rfftfreq(FRAME, 1.0 / rate_hz)
    band = (freqs >= VOICE_BAND_HZ[0]) & (freqs <= VOICE_BAND_HZ[1])
    energy = power[:, band].sum(axis=1) / FRAME
    db: np.ndarray = (10.0 * np.log10(energy + 1e-10)).astype(np.float32)
    return db


def rescued(spans: list[tuple[int, int]], frame_db: np.ndarray, above_floor_db: float,
            pad: int, longest: int) -> list[tuple[int, int]]:
    """The stretches outside `spans` whose voice-band energy (`frame_db`, one value per FRAME
    samples) stands `above_floor_db` over the file's noise floor: padded by `pad` samples,
    clipped to the gaps between `spans`, each at most `longest` samples; sorted, disjoint
    (start, end) samples."""
    total = frame_db.size * FRAME
    merged: list[list[int]] = []
    for start, end in _loud_runs(frame_db, above_floor_db):
        start, end = max(0, start - pad), min(total, end + pad)
        if merged and start <= merged[-1][1]:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    out = []
    for start, end in _outside(merged, spans):
        if (end - start) / FRAME >= MIN_RUN_FRAMES:
            out.extend(_split_long(start, end, frame_db, longest))
    return out


def _loud_runs(frame_db: np.ndarray, above_floor_db: float) -> list[tuple[int, int]]:
    """(start, end) samples of the stretches loud over the noise floor, bridged over short
    dips, each at least `MIN_RUN_FRAMES` long."""
    if frame_db.size == 0:
        return []
    floor = float(np.percentile(frame_db, FLOOR_PERCENTILE))
    loud = np.flatnonzero(frame_db > floor + above_floor_db)
    if loud.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(loud) > BRIDGE_FRAMES)
    starts = np.concatenate([[loud[0]], loud[breaks + 1]])
    ends = np.concatenate([loud[breaks], [loud[-1]]]) + 1
    return [(int(s) * FRAME, int(e) * FRAME) for s, e in zip(starts, ends, strict=True)
            if e - s >= MIN_RUN_FRAMES]


def _outside(runs: list[list[int]], spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of `runs` that no span covers."""
    pieces: list[tuple[int, int]] = []
    for start, end in runs:
        for span_start, span_end in spans:
            if span_end <= start or span_start >= end:
                continue
            if span_start > start:
                pieces.append((start, span_start))
            start = max(start, span_end)
        if end > start:
            pieces.append((start, end))
    return pieces


def _split_long(start: int, end: int, frame_db: np.ndarray, longest: int) -> list[tuple[int, int]]:
    """A stretch cut into pieces of at most `longest` samples, each cut at the quietest frame of
    the second half of its allowed length."""
    pieces = []
    while end - start > longest:
        lo, hi = (start + longest // 2) // FRAME, (start + longest) // FRAME
        cut = (lo + int(np.argmin(frame_db[lo:hi]))) * FRAME
        pieces.append((start, cut))
        start = cut
    return [*pieces, (start, end)]
