"""Speech Silero does not hear is kept by its voice-band energy (issue 24): the pure rule on
hand-made energies, then real speech through a telephone-band codec."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile

from engine.config import VadConfig
from engine.prepare.rescue import FRAME, rescued
from engine.prepare.vad import SpeechDetector, whole_windows

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
COLD_VOICE = os.path.join(DATA, "mfa_cold_corpus.wav")
SECOND = 16000 / FRAME  # frames per second (31.25)


def _energies(*stretches: tuple[float, float, float], seconds: float = 60.0) -> np.ndarray:
    """Frame energies at -70 dB with a little jitter, and (start_s, end_s, dB) stretches."""
    db = -70.0 + np.random.default_rng(0).uniform(-1.0, 1.0, int(seconds * SECOND))
    for start_s, end_s, level in stretches:
        db[int(start_s * SECOND): int(end_s * SECOND)] = level
    return db.astype(np.float32)


def _s(stamps: list[tuple[int, int]]) -> list[tuple[float, float]]:
    return [(a / 16000, b / 16000) for a, b in stamps]


def _near(found: list[tuple[float, float]], expected: list[tuple[float, float]]) -> bool:
    """Equal within one frame (32 ms) at each end."""
    return len(found) == len(expected) and all(
        a == pytest.approx(c, abs=0.033) and b == pytest.approx(d, abs=0.033)
        for (a, b), (c, d) in zip(found, expected))


def test_loud_stretch_between_spans_is_kept_and_padded_within_the_gap() -> None:
    db = _energies((10, 12, -30), (20, 25, -30), (40, 45, -30))
    spans = [(int(19 * 16000), int(26 * 16000))]  # Silero heard the middle one
    found = _s(rescued(spans, db, 15.0, pad=8000, longest=30 * 16000))
    assert _near(found, [(9.5, 12.5), (39.5, 45.5)])


def test_stationary_noise_and_short_clicks_are_not_kept() -> None:
    assert rescued([], _energies(), 15.0, pad=8000, longest=480000) == []
    clicks = _energies(*((t, t + 0.1, -20.0) for t in range(5, 55, 5)))
    assert rescued([], clicks, 15.0, pad=8000, longest=480000) == []


def test_long_loud_stretch_is_cut_at_its_quietest_frame() -> None:
    db = _energies((0, 70, -30), seconds=90.0)
    db[int(22 * SECOND)] = -45.0  # the pause to cut at
    pieces = _s(rescued([], db, 10.0, pad=0, longest=30 * 16000))
    assert pieces[0][0] == 0.0 and pieces[0][1] == pytest.approx(22.0, abs=0.033)
    assert all(b - a <= 30.0 for a, b in pieces) and pieces[-1][1] == pytest.approx(70.0, abs=0.033)
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))  # nothing between the pieces


def _telephone(audio: np.ndarray) -> np.ndarray:
    """Nothing above 3,400 Hz, then 8-bit mu-law: a narrowband codec."""
    spectrum = np.fft.rfft(audio)
    spectrum[np.fft.rfftfreq(audio.size, 1 / 16000) > 3400] = 0
    band = np.fft.irfft(spectrum, audio.size)
    peak, mu = float(np.abs(band).max()), 255.0
    companded = np.sign(band) * np.log1p(mu * np.abs(band / peak)) / np.log1p(mu)
    quantised = np.round(companded * 127) / 127
    return (peak * np.sign(quantised) * np.expm1(np.abs(quantised) * np.log1p(mu)) / mu
            ).astype(np.float32)


@pytest.mark.parametrize("copy", ["clean", "telephone"])
def test_cold_voice_keeps_its_speech_through_a_telephone_codec(copy: str) -> None:
    """Silero hears 24 of this recording's 26 s, but 7 s of its telephone copy; the voice-band
    energy keeps the rest (a 2 s silence on each side shows where the floor is)."""
    audio, rate = soundfile.read(COLD_VOICE, dtype="float32")
    assert rate == 16000
    silence = np.zeros(2 * rate, dtype=np.float32)
    audio = np.concatenate([silence, audio if copy == "clean" else _telephone(audio), silence])

    def kept_s(config: VadConfig) -> float:
        speech = SpeechDetector(config).find(whole_windows(audio))
        return sum(span.duration_s for span in speech.spans)

    silero_alone = kept_s(VadConfig(rescue=False))
    with_rescue = kept_s(VadConfig())
    if copy == "clean":
        assert silero_alone > 22.0 and with_rescue >= silero_alone
    else:
        assert silero_alone < 10.0 and with_rescue > 24.0
