"""Sentence splitting for dense scoring by sentence."""

from __future__ import annotations

import numpy as np

from costwarden.savings.trimming.sentences import keep_best_sentences, split_sentences


def test_splits_on_lines_and_sentence_ends() -> None:
    text = "Title of the abstract\nFirst finding. Second one (n = 12)! Is it 3.5 mg? Yes.\n\n"
    assert split_sentences(text) == [
        "Title of the abstract",
        "First finding.",
        "Second one (n = 12)!",
        "Is it 3.5 mg?",
        "Yes.",
    ]


def test_keeps_decimals_and_lower_case_continuations_together() -> None:
    assert split_sentences("Levels rose 2.5 fold vs. controls. P < 0.05.") == [
        "Levels rose 2.5 fold vs. controls.",
        "P < 0.05.",
    ]


def test_empty_and_blank_text_has_no_sentences() -> None:
    assert split_sentences("") == []
    assert split_sentences(" \n\t\n") == []


def test_keep_best_sentences_per_passage_in_original_order() -> None:
    sentences = ["a1", "a2", "a3", "b1", "b2"]
    scores = np.asarray([0.1, 0.9, 0.5, 0.2, 0.3])
    owners = np.asarray([0, 0, 0, 1, 1])
    assert keep_best_sentences(sentences, scores, owners, 3, 2) == ["a2 a3", "b1 b2", ""]
    assert keep_best_sentences(sentences, scores, owners, 2, 1) == ["a2", "b2"]
