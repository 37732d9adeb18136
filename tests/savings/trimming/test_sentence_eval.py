"""Sentence-level trimming evaluation: sentence bookkeeping and its recall/token arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from costwarden.savings.trimming.config import KeepPolicy, TrimConfig
from costwarden.savings.trimming.evaluation import EvalSettings, RankerSpec, measure, prepare
from costwarden.savings.trimming.scifact import Abstract, load_corpus
from costwarden.savings.trimming.sentence_eval import SentenceTrimEval, sentence_refs
from costwarden.savings.trimming.sentences import split_sentences
from tests.savings.trimming.test_evaluation import TINY, HashedWords


def test_sentence_refs_map_split_sentences_back_to_scifact_indices() -> None:
    abstract = Abstract(1, "A title", ("First. Second one.", "Third."))
    assert split_sentences(abstract.text) == ["A title", "First.", "Second one.", "Third."]
    assert sentence_refs(abstract) == [-1, 0, 0, 1]
    for real in load_corpus(Path(TINY) / "corpus.jsonl").values():
        refs = sentence_refs(real)
        assert refs[0] == -1 and max(refs) == len(real.sentences) - 1


def test_whole_passages_match_the_passage_evaluation_and_cuts_send_fewer_tokens() -> None:
    settings = EvalSettings(data_dir=TINY, distractors=4, seed=1, cache_dir=None)
    prepared = prepare(settings, HashedWords())
    claims = [*prepared.tune, *prepared.test]
    spec = RankerSpec("hybrid", TrimConfig(dense_unit="sentence"))
    evaluator = SentenceTrimEval(prepared.corpus, prepared.vectors, settings.model)

    whole = evaluator.measure(claims, spec, KeepPolicy(top_k=2), "top-2")
    passages = measure(claims, spec, KeepPolicy(top_k=2), "top-2")
    assert whole.evidence_kept == pytest.approx(passages.evidence_kept)
    assert whole.tokens_kept == pytest.approx(passages.tokens_kept)
    everything = evaluator.measure(claims, spec, KeepPolicy(), "all")
    assert everything.evidence_sentences_kept == pytest.approx(1.0)
    assert everything.tokens_kept == pytest.approx(1.0)

    cut = evaluator.measure(claims, spec, KeepPolicy(top_k=2, sentences_per_passage=1), "1")
    assert cut.tokens_kept < whole.tokens_kept
    assert cut.evidence_sentences_kept <= cut.evidence_kept
    assert cut.passages_kept == pytest.approx(2.0)
