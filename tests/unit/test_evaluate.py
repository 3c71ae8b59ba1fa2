import pytest

from engine.corpus.evaluate import corpus_wer


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
