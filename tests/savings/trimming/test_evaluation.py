"""The trimming evaluation: SciFact loading, candidate mining, and the recall/token arithmetic."""

from __future__ import annotations

import argparse
import json
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from costwarden.savings.embedding import Vectors, normalise
from costwarden.savings.trimming import eval_cmd as trimming_eval_cmd
from costwarden.savings.trimming.bm25 import tokenize
from costwarden.savings.trimming.config import KeepPolicy, TrimConfig
from costwarden.savings.trimming.eval_cmd import run
from costwarden.savings.trimming.evaluation import (
    EvalSettings,
    RankerSpec,
    choose,
    measure,
    prepare,
    summary,
)
from costwarden.savings.trimming.latency import measure_latency
from costwarden.savings.trimming.scifact import (
    Candidates,
    Claim,
    DistractorMiner,
    build_candidates,
    load_claims,
    load_corpus,
    split_halves,
)
from costwarden.savings.trimming.signals import ClaimSignals

TINY = Path(__file__).resolve().parents[1] / "data" / "scifact_tiny"
SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "rag" / "scifact"


class HashedWords:
    """A stand-in embedder: hashed bag of words, so tests need no model and are exact."""

    name = "hashed-words"
    dim = 64

    def embed(self, texts: Sequence[str]) -> Vectors:
        rows = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in tokenize(text):
                rows[i, zlib.crc32(word.encode()) % self.dim] += 1.0
        return normalise(rows)


def _signals(evidence: tuple[int, ...], dense: list[float], tokens: list[int]) -> ClaimSignals:
    claim = Claim(1, "c", {100 + i: frozenset({0}) for i in evidence})
    cand = Candidates(claim, tuple(100 + i for i in range(len(dense))))
    scores = np.asarray(dense, dtype=np.float64)
    return ClaimSignals(cand, scores, scores, scores, scores, tuple(tokens))


def test_measure_counts_evidence_claims_and_tokens() -> None:
    first = _signals((0, 2), [0.9, 0.8, 0.1, 0.0], [100, 100, 100, 100])  # keeps 0, 1
    second = _signals((3,), [0.9, 0.1, 0.2, 0.8], [10, 20, 30, 40])  # keeps 0, 3
    spec = RankerSpec("dense", TrimConfig(ranking="dense", dense_unit="passage"))
    metrics = measure([first, second], spec, KeepPolicy(top_k=2), "top-2")
    assert metrics.claims == 2
    assert metrics.evidence_kept == pytest.approx(2 / 3)  # 0 of first, 3 of second; not 2
    assert metrics.claims_whole == pytest.approx(1 / 2)
    assert metrics.tokens_kept == pytest.approx((200 + 50) / (400 + 100))
    assert metrics.passages_kept == pytest.approx(2.0)


def test_loads_claims_with_evidence_only() -> None:
    claims = load_claims(TINY / "claims_train.jsonl")
    assert sorted(c.claim_id for c in claims) == [2, 9, 69]
    by_id = {c.claim_id: c for c in claims}
    assert by_id[69].evidence == {5956380: frozenset({5, 6}), 4414547: frozenset({5})}
    corpus = load_corpus(TINY / "corpus.jsonl")
    assert len(corpus) == 16
    assert corpus[13734012].text.split("\n")[0] == corpus[13734012].title


def test_candidates_are_evidence_plus_hard_distractors_seeded() -> None:
    corpus = load_corpus(TINY / "corpus.jsonl")
    claims = load_claims(TINY / "claims_train.jsonl")
    miner = DistractorMiner(corpus)
    sets = build_candidates(claims, miner, distractors=4, seed=1)
    for cand in sets:
        assert len(cand.doc_ids) == len(cand.claim.evidence) + 4
        assert len(set(cand.doc_ids)) == len(cand.doc_ids)
        assert set(cand.claim.evidence) <= set(cand.doc_ids)
    assert build_candidates(claims, miner, 4, seed=1) == sets
    reshuffled = build_candidates(claims, miner, 4, seed=2)
    assert [set(c.doc_ids) for c in reshuffled] == [set(c.doc_ids) for c in sets]
    assert [c.doc_ids for c in reshuffled] != [c.doc_ids for c in sets]


def test_split_halves_is_a_seeded_partition() -> None:
    claims = [Claim(i, f"c{i}", {i: frozenset()}) for i in range(10)]
    tune, test = split_halves(claims, seed=3)
    assert len(tune) == len(test) == 5
    assert {c.claim_id for c in tune}.isdisjoint(c.claim_id for c in test)
    assert split_halves(claims, seed=3) == (tune, test)


def test_evaluation_runs_end_to_end_on_the_tiny_fixture() -> None:
    settings = EvalSettings(data_dir=TINY, distractors=4, seed=1, cache_dir=None)
    prepared = prepare(settings, HashedWords())
    assert len(prepared.tune) + len(prepared.test) == 3
    for claim in (*prepared.tune, *prepared.test):
        assert len(claim.tokens) == len(claim.candidates.doc_ids)
        assert all(t > 0 for t in claim.tokens)
        # every passage has sentences: its best-sentence cosine is a real one, not the -1 floor
        assert (claim.dense_sentence > -1).all()
    choice = choose(prepared.tune)
    assert choice.ranking.config.ranking == "hybrid"
    report = summary(settings, prepared, choice)
    rows = report["test"]
    assert {r["ranking"] for r in rows} >= {"dense passage", "bm25", report["chosen_ranking"]}
    top1 = next(r for r in rows if r["ranking"] == "dense passage" and r["policy"] == "top-1")
    assert top1["passages_kept"] == pytest.approx(1.0)
    assert 0 < top1["tokens_kept"] < 1
    json.dumps(report)  # what the command writes


def test_latency_is_measured_cold_and_warm() -> None:
    corpus = load_corpus(TINY / "corpus.jsonl")
    claims = load_claims(TINY / "claims_train.jsonl")
    sets = build_candidates(claims, DistractorMiner(corpus), distractors=8, seed=1)
    latency = measure_latency(
        "hybrid", TrimConfig(), HashedWords, sets, corpus=corpus, model="gpt-4o-mini"
    )
    assert latency.requests == 3
    assert latency.passages == pytest.approx(sum(len(c.doc_ids) for c in sets) / 3)
    assert 0 < latency.cold_ms_p50 <= latency.cold_ms_p90
    assert 0 < latency.warm_ms_p50 <= latency.warm_ms_p90


def test_command_prints_the_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI plumbing, not MiniLM: the real model's ranking is tested in test_trimming.py.
    monkeypatch.setattr(trimming_eval_cmd, "TruncatedMiniLM", lambda _max_tokens: HashedWords())
    out = tmp_path / "trimming.json"
    args = argparse.Namespace(
        data=TINY,
        json=out,
        cache_dir=tmp_path / "cache",
        no_cache=False,
        seed=1,
        distractors=4,
        embed_max_tokens=32,
        latency_requests=0,
    )
    assert run(args) == 0
    report = json.loads(out.read_text())
    assert report["claims"]["tune"] + report["claims"]["test"] == 3
    printed = capsys.readouterr().out
    assert "Context trimming on SciFact" in printed
    assert "Sentence-level trimming" in printed
    assert report["sentences"] and report["test"]
    assert list((tmp_path / "cache").glob("*.npy"))  # embeddings cached for the rerun


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not beside the checkout")
def test_shared_scifact_has_the_documented_shape() -> None:
    claims = load_claims(SHARED / "claims_train.jsonl")
    assert len(claims) == 505
    assert sum(len(c.evidence) for c in claims) == 564
