"""Word error rate with the Whisper English text normaliser (package `whisper-normalizer`).

Corpus WER is the total of errors over the total of reference words, not a mean of row WERs.
Two departures from the normaliser as published, both found on the shared corpus (issue 28):
a token left with no letter or digit (the `.` that `"bit..."` leaves) is not a word, and a
reference's parentheses are unwrapped instead of dropped with their words (read-speech corpora
such as LJSpeech write spoken asides in parentheses: LJ001-0024 kept 6 of its 21 words, and a
correct transcript scored 216.7%). References the normaliser still shortens by half or more are
reported (`EvalReport.shortened`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.errors import ConfigError

# Annotation tokens found in some references (e.g. MFA's `[adif]`, `<VOCNOISE>`): not words.
ANNOTATION = re.compile(r"\[[a-z_]+\]|<[A-Z_]+>")
PARENTHESES = re.compile(r"[()]")
WORDLIKE = re.compile(r"\w")
SHORTENED_BELOW = 0.5  # a reference keeping under half its words after normalising is reported


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


@dataclass(frozen=True)
class Shortened:
    """A reference that normalising shortened by half or more."""

    item_id: str
    words_before: int
    words_after: int


class Normaliser:
    """The Whisper English normaliser with this module's two fixes (see the docstring)."""

    def __init__(self) -> None:
        self._whisper: Any = normalizer()

    def hypothesis(self, text: str) -> str:
        return _words_only(self._whisper(text))

    def reference(self, text: str) -> str:
        return self.hypothesis(PARENTHESES.sub(" ", ANNOTATION.sub(" ", text)))


def _words_only(text: str) -> str:
    return " ".join(token for token in text.split() if WORDLIKE.search(token))


def shortening(item_id: str, raw: str, normalised: str) -> Shortened | None:
    """The reference, when normalising kept under half of its words (numbers read as digits,
    such as "eighteen thirteen" -> "1813", shorten one less than that)."""
    before = len(re.findall(r"\w+", ANNOTATION.sub(" ", raw)))
    after = len(normalised.split())
    return Shortened(item_id, before, after) if after < SHORTENED_BELOW * before else None


def _jiwer() -> Any:
    try:
        import jiwer
    except ImportError as e:
        raise ConfigError("WER needs the eval extra: pip install 'batchscribe[eval]'") from e
    return jiwer


def corpus_wer(references: Sequence[str], hypotheses: Sequence[str]) -> WerResult:
    """WER over all pairs, both sides normalised; rows whose reference is empty are skipped."""
    pairs = [(str(n), ref, hyp, "ok")
             for n, (ref, hyp) in enumerate(zip(references, hypotheses, strict=True))]
    return evaluate_pairs(pairs).corpus


@dataclass(frozen=True)
class RowScore:
    item_id: str
    errors: int
    reference_words: int
    reference: str
    hypothesis: str

    @property
    def wer(self) -> float:
        return 100.0 * self.errors / self.reference_words if self.reference_words else 0.0


@dataclass(frozen=True)
class EvalReport:
    corpus: WerResult
    cer: float
    rows: list[RowScore]
    skipped: dict[str, int]
    shortened: list[Shortened] = field(default_factory=list)

    def summary(self, worst: int = 10) -> dict[str, object]:
        ranked = sorted(self.rows, key=lambda r: (-r.errors, r.item_id))[:worst]
        return {
            "wer": round(self.corpus.wer, 3), "cer": round(self.cer, 3),
            "substitutions": self.corpus.substitutions, "deletions": self.corpus.deletions,
            "insertions": self.corpus.insertions, "reference_words": self.corpus.reference_words,
            "rows_evaluated": len(self.rows), "rows_skipped": self.skipped,
            "worst_rows": [{"id": r.item_id, "wer": round(r.wer, 1), "errors": r.errors,
                            "reference": r.reference, "hypothesis": r.hypothesis}
                           for r in ranked],
            "shortened_references": [{"id": s.item_id, "words_before": s.words_before,
                                      "words_after": s.words_after} for s in self.shortened],
        }


def evaluate_pairs(pairs: Sequence[tuple[str, str | None, str | None, str]]) -> EvalReport:
    """Score (id, reference, hypothesis, status) rows; errors and missing references are skipped.

    A row with status `empty` counts with an empty hypothesis: its words are all deletions.
    """
    jiwer = _jiwer()
    normalise = Normaliser()
    skipped = {"error": 0, "no_reference": 0}
    refs, hyps, ids = [], [], []
    shortened: list[Shortened] = []
    for item_id, reference, hypothesis, status in pairs:
        reference_n = normalise.reference(reference or "")
        if status == "error":
            skipped["error"] += 1
        elif not reference_n:
            skipped["no_reference"] += 1
        else:
            ids.append(item_id)
            refs.append(reference_n)
            hyps.append(normalise.hypothesis(hypothesis or ""))
            short = shortening(item_id, reference or "", reference_n)
            if short is not None:
                shortened.append(short)
    if not refs:
        return EvalReport(WerResult(0.0, 0, 0, 0, 0, 0), 0.0, [], skipped, shortened)
    words = jiwer.process_words(refs, hyps)
    rows = [RowScore(item_id, _row_errors(alignment), len(ref.split()), ref, hyp)
            for item_id, alignment, ref, hyp
            in zip(ids, words.alignments, refs, hyps, strict=True)]
    total = words.substitutions + words.deletions + words.hits
    corpus = WerResult(100.0 * (words.substitutions + words.deletions + words.insertions) / total,
                       words.substitutions, words.deletions, words.insertions, total, len(refs))
    return EvalReport(corpus, 100.0 * jiwer.cer(refs, hyps), rows, skipped, shortened)


def _row_errors(alignment: Sequence[Any]) -> int:
    """Substitutions + deletions + insertions of one row's jiwer alignment."""
    errors = 0
    for chunk in alignment:
        if chunk.type in ("substitute", "delete"):
            errors += chunk.ref_end_idx - chunk.ref_start_idx
        elif chunk.type == "insert":
            errors += chunk.hyp_end_idx - chunk.hyp_start_idx
    return errors


def load_pairs(output_dir: str, reference_column: str,
               manifest: str | None = None) -> list[tuple[str, str | None, str | None, str]]:
    """(id, reference, hypothesis, status) per output row.

    References come from the output's passthrough column, or from `manifest` joined on id.

    Raises:
        ConfigError: no output parts, or the reference column is not there.
    """
    import pyarrow.dataset as ds

    from engine.io.writer import part_files

    parts = part_files(output_dir)
    if not parts:
        raise ConfigError(f"{output_dir} holds no transcript parts (part-*.parquet)")
    output = ds.dataset(parts, format="parquet")
    if manifest is None:
        if reference_column not in output.schema.names:
            raise ConfigError(
                f"the output has no column {reference_column!r}; pass the manifest that holds "
                "it, or transcribe with that column passed through")
        table = output.to_table(columns=["id", reference_column, "text", "status"])
        return [(r["id"], r[reference_column], r["text"], r["status"]) for r in table.to_pylist()]
    references = _manifest_references(manifest, reference_column)
    rows = output.to_table(columns=["id", "text", "status"]).to_pylist()
    if rows and references and not any(r["id"] in references for r in rows):
        raise ConfigError(_no_common_ids([r["id"] for r in rows], references, manifest))
    return [(r["id"], references.get(r["id"]), r["text"], r["status"]) for r in rows]


def evaluate_output(output_dir: str, reference_column: str,
                    manifest: str | None = None) -> EvalReport:
    """Score a transcription folder against references (see `load_pairs`).

    Raises:
        ConfigError: no parts, no reference column, ids that match no reference, or no row
            that could be scored (a WER over 0 words means nothing).
    """
    pairs = load_pairs(output_dir, reference_column, manifest)
    report = evaluate_pairs(pairs)
    if not report.rows:
        source = f"the manifest {manifest}" if manifest else "the output"
        raise ConfigError(
            f"no row of {output_dir} could be scored: {report.skipped['no_reference']} of "
            f"{len(pairs)} rows have no reference in column {reference_column!r} of {source} "
            f"and {report.skipped['error']} are errors; give a column or manifest with their "
            "references")
    return report


def _no_common_ids(output_ids: list[str], references: dict[str, str | None],
                   manifest: str) -> str:
    """Why no transcript found its reference, naming ids that differ only by an extension."""
    by_stem = {os.path.splitext(ref_id)[0]: ref_id for ref_id in references}
    near = [(item_id, by_stem.get(os.path.splitext(item_id)[0])) for item_id in output_ids]
    near_pairs = [(item_id, ref_id) for item_id, ref_id in near if ref_id is not None]
    message = (f"none of the {len(output_ids)} transcript ids is an id of {manifest} "
               f"({len(references)} references; e.g. transcript {output_ids[0]!r}, reference "
               f"{next(iter(references))!r})")
    if near_pairs:
        item_id, ref_id = near_pairs[0]
        message = (f"none of the {len(output_ids)} transcript ids is an id of {manifest}; "
                   f"{len(near_pairs)} differ only by a file extension (transcript "
                   f"{item_id!r}, reference {ref_id!r})")
    return message + "; key the references by the ids of the manifest that was transcribed"


def _manifest_references(manifest: str, column: str) -> dict[str, str | None]:
    """{id: reference}: from a table with `id` and the column (Parquet, TSV or CSV; no audio
    column needed), else from a manifest whose ids derive from its paths."""
    import pyarrow.dataset as ds

    from engine.corpus.references import read_table
    from engine.io.manifest import open_manifest, resolve_files

    if manifest.lower().endswith((".tsv", ".csv")):  # a references table
        delimited = read_table(manifest)
        if "id" not in delimited.column_names or column not in delimited.column_names:
            raise ConfigError(f"references table {manifest} needs columns id and {column}; it "
                              f"has: {', '.join(delimited.column_names)}")
        return dict(zip(delimited.column("id").to_pylist(), delimited.column(column).to_pylist(),
                        strict=True))
    table = ds.dataset(resolve_files(manifest), format="parquet")
    if "id" in table.schema.names and column in table.schema.names:
        rows = table.to_table(columns=["id", column]).to_pylist()
        return {str(r["id"]): r[column] for r in rows if r["id"] is not None}
    opened = open_manifest(manifest)
    if column not in opened.schema.names:
        raise ConfigError(f"manifest {manifest} has no column {column!r}; it has: "
                          f"{', '.join(opened.schema.names)}")
    return {item.item_id: item.passthrough[column] for item in opened.items(passthrough=(column,))}
