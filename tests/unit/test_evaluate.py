import csv
import os

import pytest

from engine.corpus.evaluate import (
    Normaliser,
    Shortened,
    corpus_wer,
    evaluate_pairs,
    normalizer,
    shortening,
)


def test_hand_computed_wer() -> None:
    # "the cat sat" vs "the bat sat down": 1 substitution + 1 insertion over 3 words.
    # "a b c d" vs "a c d": 1 deletion over 4 words. Corpus: 3 errors / 7 words.
    result = corpus_wer(["The cat sat.", "a b c d"], ["the bat sat down", "A c d"])
    assert (result.substitutions, result.deletions, result.insertions) == (1, 1, 1)
    assert result.reference_words == 7
    assert result.wer == pytest.approx(300 / 7)


def test_normaliser_ignores_case_punctuation_and_number_style() -> None:
    assert corpus_wer(["It costs 20 dollars!"], ["it costs twenty dollars"]).wer == 0.0


def test_annotation_tokens_are_not_words() -> None:
    assert corpus_wer(["so [adif] we <VOCNOISE> went"], ["so we went"]).wer == 0.0


def test_empty_hypothesis_is_all_deletions() -> None:
    assert corpus_wer(["hello world"], [""]).wer == 100.0


# LJSpeech LJ001-0024's reference (shared corpus): its aside in parentheses is spoken.
LJ001_0024 = ("But the first Bible actually dated (which also was printed at Maintz by Peter "
              "Schoeffer in the year fourteen sixty-two)")
SHARED_CORPUS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "corpus",
                             "real", "manifest.tsv")


def test_stray_full_stop_is_not_a_word() -> None:
    # issue 28: "bit..." was normalised to "bit ." and the "." counted as a deleted word
    assert corpus_wer(["This is a little bit..."], ["this is a little bit"]).wer == 0.0
    assert Normaliser().reference("Wait . . . what?!") == "wait what"


def test_parenthesised_words_of_a_reference_are_kept() -> None:
    # issue 28: the Whisper normaliser dropped the aside, so a correct transcript scored 216.7%
    spoken = LJ001_0024.replace("(", "").replace(")", "")
    assert corpus_wer([LJ001_0024], [spoken]).wer == 0.0
    assert evaluate_pairs([("LJ001-0024", LJ001_0024, spoken, "ok")]).shortened == []


def test_a_reference_the_normaliser_shortens_is_reported() -> None:
    report = evaluate_pairs([("a", "[Applause] thank you [Music continues]", "thank you", "ok"),
                             ("b", "It costs 20 dollars!", "it costs twenty dollars", "ok")])
    assert report.shortened == [Shortened("a", 5, 2)]  # words in brackets go, as in Whisper's
    assert report.summary()["shortened_references"] == [
        {"id": "a", "words_before": 5, "words_after": 2}]


def test_no_shared_corpus_reference_is_emptied_or_halved() -> None:
    if not os.path.exists(SHARED_CORPUS):
        pytest.skip("the shared corpus (../shared/corpus/real) is not here")
    with open(SHARED_CORPUS, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    normalise = Normaliser()
    stock = normalizer()
    found = [shortening(r["id"], r["reference_text"], normalise.reference(r["reference_text"]))
             for r in rows]
    assert len(rows) == 72 and [s for s in found if s is not None] == []
    lj = next(r["reference_text"] for r in rows if r["id"] == "ljspeech_LJ001-0024")
    assert shortening("lj", lj, stock(lj)) == Shortened("lj", 21, 6)  # what it used to do
