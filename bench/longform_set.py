"""Build the long-form evaluation set: real clips of the shared corpus joined into long files.

    python bench/longform_set.py [--out /tmp/batchscribe-longform] [--gap-s 0.5] [--corpus DIR]

The shared corpus has no long recording with a word-exact reference, so long files are made from
consecutive or related clips joined with short silent gaps, the way issue 14 measured the gap
between the engine and faster-whisper's sequential loop:
- lj_chapter_a: LJSpeech LJ001-0001..0020, consecutive sentences of one chapter (one reader);
- lj_chapter_b: LJ001-0021..0032, the sentences that follow;
- mfa_clips: the Montreal Forced Aligner example clips (one speaker, conversational, disfluent);
- many_speakers: short clips of many speakers and sources (LibriSpeech, Common Voice,
  SpeechBrain, Picovoice, JFK), so every gap is also a change of voice;
- lucier_room: Alvin Lucier's "I am sitting in a room" (gentle's example), one real 101 s
  recording, nothing joined;
- conversational: the corpus's longer spontaneous recordings (an earnings call, the MFA acoustic
  and cold corpora, Picovoice's diarization test, an 8 kHz Harvard-sentences reading): fillers,
  restarts, telephone bandwidth.
Long recordings in real corpora are seldom studio-clean, so each file also comes in three
degraded copies (`VARIANTS`, deterministic, numpy only): `_noisy` (pink noise at 10 dB SNR),
`_phone` (below 3,400 Hz, 8-bit mu-law: a narrowband codec) and `_room` (a synthetic room
impulse response, RT60 0.6 s). The copies decode differently, so the set says more about a
difference of a few words between two systems than its clean files alone.
Writes one 16 kHz FLAC per file and `references.tsv` (id, file, duration_s, reference_text).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable

import click
import numpy as np
from common import CORPUS, Rows, load_corpus, read_audio

RATE = 16000
DEFAULT_OUT = os.path.join("/tmp", "batchscribe-longform")


def _lj(first: int, last: int) -> list[str]:
    return [f"ljspeech_LJ001-{n:04d}" for n in range(first, last + 1)]


SETS: dict[str, list[str]] = {
    "lj_chapter_a": _lj(1, 20),
    "lj_chapter_b": _lj(21, 32),
    "mfa_clips": [
        "mfa_clip_mfa_words", "mfa_clip_mfa_surround", "mfa_clip_mfa_thoughts",
        "mfa_clip_mfa_reallylong", "mfa_clip_mfa_longstop", "mfa_clip_mfa_theother",
        "mfa_clip_mfa_youknow", "mfa_clip_mfa_crossword", "mfa_clip_mfa_her",
        "mfa_clip_mfa_whatscalled",
    ],
    "many_speakers": [
        "librispeech_61-70968-0000", "speechbrain_spk1_snt1", "common_voice_en_22058264",
        "picovoice_test_librispeech_1272-128104-0000", "speechbrain_spk2_snt2",
        "librispeech_2412-153948-0000", "speechbrain_spk1_snt3", "common_voice_en_22058266",
        "jfk_inaugural", "speechbrain_spk2_snt4", "speechbrain_example1",
        "common_voice_en_22058267", "speechbrain_spk1_snt4",
    ],
    "lucier_room": ["gentle_lucier"],
    "conversational": [
        "earnings22_1_4482311_3_62", "mfa_acoustic_corpus", "osr_us_000_0034_8k",
        "mfa_cold_corpus", "picovoice_diarization_test", "mfa_cold_corpus3",
    ],
}


def _filtered(signal: np.ndarray, gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """`signal` filtered in the frequency domain by `gain(hz)`."""
    spectrum = np.fft.rfft(signal)
    return np.fft.irfft(spectrum * gain(np.fft.rfftfreq(signal.size, 1 / RATE)), signal.size)


def noisy(audio: np.ndarray, snr_db: float = 10.0) -> np.ndarray:
    """Pink noise (power falling as 1/f) added at `snr_db` below the speech's mean power."""
    white = np.random.default_rng(audio.size).standard_normal(audio.size)
    noise = _filtered(white, lambda hz: 1 / np.sqrt(np.maximum(hz, 20.0)))
    speech_power = np.mean(audio[np.abs(audio) > 0.01] ** 2) if np.any(audio) else 1.0
    noise *= np.sqrt(speech_power / np.mean(noise ** 2) / 10 ** (snr_db / 10))
    mixed = audio + noise
    return mixed / max(1.0, float(np.max(np.abs(mixed))) / 0.99)  # no clipping


def phone(audio: np.ndarray) -> np.ndarray:
    """A narrowband codec: nothing above 3,400 Hz, then 8-bit mu-law quantisation. (Without the
    300 Hz high-pass of a telephone line: with it, Silero VAD hears 4 s of the MFA clips' 46 s
    of speech, so every system loses the same words and the copy says nothing about decoding.)"""
    band = _filtered(audio, lambda hz: hz <= 3400)
    peak = max(float(np.max(np.abs(band))), 1e-9)
    mu = 255.0
    companded = np.sign(band) * np.log1p(mu * np.abs(band / peak)) / np.log1p(mu)
    quantised = np.round(companded * 127) / 127
    return peak * np.sign(quantised) * np.expm1(np.abs(quantised) * np.log1p(mu)) / mu


def room(audio: np.ndarray, rt60_s: float = 0.6) -> np.ndarray:
    """Reverberation: the audio convolved with a direct path and an exponentially decaying
    noise tail (a synthetic room impulse response), at its original peak level."""
    length = int(rt60_s * RATE)
    rng = np.random.default_rng(length)
    t = np.arange(length) / RATE
    response = 0.3 * rng.standard_normal(length) * np.exp(-6.9 * t / rt60_s)
    response[0] = 1.0
    size = audio.size + length - 1
    wet = np.fft.irfft(np.fft.rfft(audio, size) * np.fft.rfft(response, size), size)[:audio.size]
    return wet * (np.max(np.abs(audio)) / max(float(np.max(np.abs(wet))), 1e-9))


VARIANTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "noisy": noisy, "phone": phone, "room": room}


def variant_of(file_id: str) -> str | None:
    """The degraded copy a file of the set is (a key of `VARIANTS`), None for a clean file."""
    name, _, variant = file_id.rpartition("_")
    return variant if name in SETS and variant in VARIANTS else None


def build(out: str, gap_s: float, corpus: str = CORPUS, variants: bool = True) -> str:
    """Write the set's FLAC files (with their degraded copies unless `variants` is off) and
    references.tsv (also as manifest.tsv, which the benchmarks' `--corpus` reads) into `out`;
    return the references path."""
    import shutil

    import soundfile

    rows = {r["id"]: r for r in load_corpus(corpus)}
    os.makedirs(out, exist_ok=True)
    gap = np.zeros(int(gap_s * RATE), dtype=np.float32)
    refs = []
    for name, ids in SETS.items():
        missing = [i for i in ids if i not in rows]
        if missing:
            raise click.ClickException(f"set {name}: clips not in the corpus: {missing}")
        pieces: list[np.ndarray] = []
        for i in ids:
            pieces += [read_audio(rows[i]["path"]), gap]
        clean = np.concatenate(pieces[:-1])
        text = " ".join(rows[i]["reference_text"].strip() for i in ids)
        copies = {name: clean}
        if variants:
            copies.update({f"{name}_{v}": make(clean) for v, make in VARIANTS.items()})
        for file_id, audio in copies.items():
            audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
            soundfile.write(os.path.join(out, f"{file_id}.flac"), audio, RATE, format="FLAC")
            refs.append({"id": file_id, "file": f"{file_id}.flac",
                         "duration_s": f"{audio.size / RATE:.3f}", "reference_text": text})
    path = os.path.join(out, "references.tsv")
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, ["id", "file", "duration_s", "reference_text"],
                                delimiter="\t")
        writer.writeheader()
        writer.writerows(refs)
    shutil.copyfile(path, os.path.join(out, "manifest.tsv"))
    return path


def load_set(folder: str = DEFAULT_OUT) -> Rows:
    """The set's rows (`load_corpus` of its folder), built there first when missing."""
    if not os.path.exists(os.path.join(folder, "manifest.tsv")):
        build(folder, 0.5)
    return load_corpus(folder)


@click.command()
@click.option("--out", default=DEFAULT_OUT, show_default=True, help="Folder for the set.")
@click.option("--gap-s", default=0.5, show_default=True, help="Silence between clips.")
@click.option("--corpus", default=CORPUS, show_default=True, help="The shared real corpus.")
@click.option("--variants/--clean-only", default=True, show_default=True,
              help="Also write each file's noisy, telephone and reverberant copies.")
def main(out: str, gap_s: float, corpus: str, variants: bool) -> None:
    path = build(out, gap_s, corpus, variants)
    with open(path, encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            click.echo(f"{row['id']}: {row['duration_s']} s")


if __name__ == "__main__":
    main()
