"""Word error rate with the Whisper English text normaliser (package `whisper-normalizer`).

Corpus WER is the total of errors over the total of reference words, not a mean of row WERs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from engine.errors import ConfigError

# Annotation tokens found in some references (e.g. MFA's `[adif]`, `<VOCNOISE>`): not words.
ANNOTATION = re.compile(r"\[[a-z_]+\]|<[A-Z_]+>")


@dataclass(frozen=True)
class WerResult:
    wer: float
    substitutions: int
    deletions: int
    insertions: int
    reference_words: int
    rows: int


def normalizer() -> object:
    try:
        from whisper_normalizer.english import EnglishTextNormalizer
    except ImportError as e:
        raise ConfigError(
            "WER needs the eval extra: pip install 'batchscribe[eval]'") from e
    return EnglishTextNormalizer()


def corpus_wer(references: Sequence[str], hypotheses: Sequence[str]) -> WerResult:
    """WER over all pairs, both sides normalised; rows whose reference is empty are skipped."""
    import jiwer

    normalise = normalizer()
    refs, hyps = [], []
    for ref, hyp in zip(references, hypotheses):
        ref_n = normalise(ANNOTATION.sub(" ", ref))  # type: ignore[operator]
        if ref_n.strip():
            refs.append(ref_n)
            hyps.append(normalise(hyp or "") or "")  # type: ignore[operator]
    if not refs:
        return WerResult(0.0, 0, 0, 0, 0, 0)
    hyps = [h if h.strip() else "" for h in hyps]
    out = jiwer.process_words(refs, hyps)
    words = out.substitutions + out.deletions + out.hits
    return WerResult(
        wer=100.0 * (out.substitutions + out.deletions + out.insertions) / words,
        substitutions=out.substitutions, deletions=out.deletions,
        insertions=out.insertions, reference_words=words, rows=len(refs),
    )
