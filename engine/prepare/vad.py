"""Voice activity detection: speech spans of a waveform, with faster-whisper's Silero model.

Two views of the same speech probabilities: `spans`, faster-whisper's padded speech segments
(silences under `min_silence_duration_ms` kept inside), which become the chunks; and `voiced`,
the frames the model itself hears as speech (no padding, no bridged pauses), which tell the
decoder where a chunk's words must be (issue 14: speech the decoder left out is decoded again).
The Silero ONNX model ships inside the faster-whisper wheel; nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from engine.config import VadConfig
from engine.prepare.rescue import band_energy_db, rescued
from engine.prepare.windows import WINDOW_SAMPLES
from engine.types import SpeechSpan

if TYPE_CHECKING:
    from faster_whisper.vad import VadOptions

MAX_SPAN_S = 30.0
# Voiced frames: speech probability from this share of the VAD threshold. Atypical voices (a
# cold, whispering) stay at 0.2-0.5 through whole sentences; silence and noise stay below 0.1.
VOICED_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class Speech:
    """What VAD found in some audio: its length, its speech spans, and its voiced frames (None
    when VAD is off: nothing is known about where the speech is)."""

    total_samples: int
    spans: list[SpeechSpan]
    voiced: list[SpeechSpan] | None


class SpeechDetector:
    """Finds speech in 16 kHz audio. Build one per worker process (it holds an ONNX session)."""

    def __init__(self, config: VadConfig, sample_rate_hz: int = 16000) -> None:
        from faster_whisper.vad import VadOptions, get_vad_model

        self._config = config
        self._rate = sample_rate_hz
        self._options = VadOptions(
            threshold=config.threshold,
            min_speech_duration_ms=config.min_speech_duration_ms,
            min_silence_duration_ms=config.min_silence_duration_ms,
            speech_pad_ms=config.speech_pad_ms,
            max_speech_duration_s=MAX_SPAN_S,
        )
        self._voiced_options = VadOptions(  # the hysteresis alone: no padding, no bridging
            threshold=config.threshold * VOICED_SHARE, min_speech_duration_ms=0,
            min_silence_duration_ms=0, speech_pad_ms=0, max_speech_duration_s=float("inf"))
        get_vad_model()  # load the ONNX session now, not on the first item

    def find(self, windows: Iterable[np.ndarray]) -> Speech:
        """Speech spans and voiced frames of audio given as `windows.WINDOW_SAMPLES`-sized
        windows (the last may be shorter; `whole_windows` for audio held whole): the spans
        faster-whisper's `get_speech_timestamps` finds on the whole audio, without holding it;
        the whole audio as one span when VAD is disabled."""
        if not self._config.enabled:
            total = sum(window.size for window in windows)
            return Speech(total, [SpeechSpan(0.0, total / self._rate)] if total else [], None)
        probs, total = _WindowedProbabilities(self._rate), 0
        for window in windows:
            total += window.size
            probs.add(window)
        frames = probs.finish()
        found = speech_stamps(frames, total, self._options, self._rate)
        if self._config.rescue:
            pad = self._rate * self._config.speech_pad_ms // 1000
            found = sorted([*found, *rescued(found, probs.energy_db()[: -(-total // FRAME)],
                                             self._config.rescue_db, pad,
                                             int(MAX_SPAN_S * self._rate))])
            found = [(start, min(end, total)) for start, end in found]
        voiced = speech_stamps(frames, total, self._voiced_options, self._rate)
        return Speech(total, _seconds(found, self._rate), _seconds(voiced, self._rate))


def _seconds(stamps: list[tuple[int, int]], rate: int) -> list[SpeechSpan]:
    return [SpeechSpan(start / rate, end / rate) for start, end in stamps]


def whole_windows(samples: np.ndarray) -> list[np.ndarray]:
    """Audio held whole, as the windows `SpeechDetector.find` takes (views, no copies)."""
    return [samples[i: i + WINDOW_SAMPLES] for i in range(0, samples.size, WINDOW_SAMPLES)]


FRAME = 512  # samples per VAD frame
CONTEXT = 64  # samples of the previous frame given with each frame


class _WindowedProbabilities:
    """Silero's speech probability per frame, one window (the model's 10,000-frame batch) at a
    time, carrying the model state and the frame context across windows exactly as
    faster-whisper's `SileroVADModel` carries them across its batches of the whole audio."""

    def __init__(self, rate_hz: int) -> None:
        from faster_whisper.vad import get_vad_model

        self._session = get_vad_model().session
        self._rate = rate_hz
        self._energy_db: list[np.ndarray] = []
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._probs: list[np.ndarray] = []
        self._padded = False

    def add(self, window: np.ndarray) -> None:
        if self._padded:
            raise ValueError("only the last window may be shorter than the others")
        if window.size % FRAME:  # the last window: zero-padded to whole frames
            self._padded = True
            window = np.pad(window, (0, FRAME - window.size % FRAME))
            window[-CONTEXT:] = 0.0  # faster-whisper zeroes the end of the last frame
        self._run(window)

    def finish(self) -> np.ndarray:
        if not self._padded:  # faster-whisper pads a whole frame when the length is exact
            self._run(np.zeros(FRAME, dtype=np.float32))
        return np.concatenate(self._probs) if self._probs else np.zeros(0, dtype=np.float32)

    def _run(self, window: np.ndarray) -> None:
        frames = window.reshape(-1, FRAME)
        context = np.concatenate([self._context[None, :], frames[:-1, -CONTEXT:]])
        self._context = frames[-1, -CONTEXT:].copy()
        batch = np.concatenate([context, frames], axis=1)
        out, self._h, self._c = self._session.run(
            None, {"input": batch, "h": self._h, "c": self._c})
        self._probs.append(np.asarray(out, dtype=np.float32).reshape(-1))
        self._energy_db.append(band_energy_db(frames, self._rate))

    def energy_db(self) -> np.ndarray:
        """Voice-band energy of each frame (`rescue.band_energy_db`), aligned with the
        probabilities."""
        return np.concatenate(self._energy_db) if self._energy_db else np.zeros(0, np.float32)


def speech_stamps(probs: np.ndarray, total: int, options: VadOptions,
                  rate: int) -> list[tuple[int, int]]:
    """Speech (start, end) samples from per-frame probabilities: the rules of faster-whisper's
    `get_speech_timestamps` (hysteresis, minimum silence, forced cuts of long speech at the last
    pause, padding), applied to probabilities computed elsewhere."""
    threshold = options.threshold
    low = options.neg_threshold
    low = max(threshold - 0.15, 0.01) if low is None else low
    pad = rate * options.speech_pad_ms / 1000
    longest = rate * options.max_speech_duration_s - FRAME - 2 * pad
    min_silence = rate * options.min_silence_duration_ms / 1000
    min_speech = rate * options.min_speech_duration_ms / 1000
    pause = rate * 98 / 1000  # a pause long enough to cut too-long speech at
    found: list[list[float]] = []
    start: float | None = None
    silence_from = last_pause_end = resume = 0
    for i, prob in enumerate(probs):  # float32 scalars: compared as faster-whisper compares
        at = FRAME * i
        if prob >= threshold and silence_from:
            silence_from = 0
            if resume < last_pause_end:
                resume = at
        if prob >= threshold and start is None:
            start = at
            continue
        if start is not None and at - start > longest:
            if last_pause_end:
                found.append([start, last_pause_end])
                start = None if resume < last_pause_end else resume
            else:
                found.append([start, at])
                start = None
            last_pause_end = resume = silence_from = 0
            if start is None:
                continue
        if prob < low and start is not None:
            silence_from = silence_from or at
            if at - silence_from > pause:
                last_pause_end = silence_from
            if at - silence_from < min_silence:
                continue
            if silence_from - start > min_speech:
                found.append([start, silence_from])
            start, last_pause_end, resume, silence_from = None, 0, 0, 0
    if start is not None and total - start > min_speech:
        found.append([start, total])
    return _padded(found, total, pad)


def _padded(found: list[list[float]], total: int, pad: float) -> list[tuple[int, int]]:
    """Widen each span by `pad` samples, or by half the silence to its neighbour when shorter."""
    for i, span in enumerate(found):
        if i == 0:
            span[0] = int(max(0, span[0] - pad))
        if i + 1 < len(found):
            after = found[i + 1]
            silence = after[0] - span[1]
            if silence < 2 * pad:
                span[1] += int(silence // 2)
                after[0] = int(max(0, after[0] - silence // 2))
            else:
                span[1] = int(min(total, span[1] + pad))
                after[0] = int(max(0, after[0] - pad))
        else:
            span[1] = int(min(total, span[1] + pad))
    return [(int(start), int(end)) for start, end in found]
