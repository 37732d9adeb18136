"""Context trimming: ranking on hand-made cases, and the keep policies' exact arithmetic."""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from costwarden.pricing.tokens import TokenCounter
from costwarden.savings.embedding import EmbeddingPool, MiniLMEmbedder, Vectors, normalise
from costwarden.savings.trimming.bm25 import Bm25Index, CorpusStats, Scores, tokenize
from costwarden.savings.trimming.config import KeepPolicy, TrimConfig
from costwarden.savings.trimming.sentences import split_sentences
from costwarden.savings.trimming.trimmer import (
    PassageTrimmer,
    Ranked,
    dense_scores,
    fuse,
    rank_scores,
    rerank,
    select,
)
from costwarden.savings.trimming.vector_cache import VectorCache

MODEL = "gpt-4o-mini"

# (question, passages, index of the passage that answers it)
CASES = [
    (
        "At what temperature does water boil at sea level?",
        [
            "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
            "Photosynthesis converts light energy into chemical energy in plants.",
            "At standard atmospheric pressure, pure water boils at 100 degrees Celsius.",
            "The stock market closed higher on Friday after strong earnings reports.",
            "Mount Everest is the highest mountain above sea level on Earth.",
        ],
        2,
    ),
    (
        "Which drug lowers LDL cholesterol by inhibiting HMG-CoA reductase?",
        [
            "Insulin is a hormone that regulates blood glucose levels.",
            "Aspirin irreversibly inhibits cyclooxygenase and reduces platelet aggregation.",
            "The Great Wall of China stretches thousands of kilometres.",
            "Statins such as atorvastatin inhibit HMG-CoA reductase, lowering LDL cholesterol.",
            "Cholesterol is carried in the blood by lipoproteins.",
        ],
        3,
    ),
]


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def tokens() -> TokenCounter:
    return TokenCounter()


@pytest.mark.parametrize("ranking", ["dense", "hybrid"])
@pytest.mark.parametrize("unit", ["passage", "sentence"])
@pytest.mark.parametrize("case", CASES)
def test_the_answering_passage_ranks_first(
    ranking: str,
    unit: str,
    case: tuple[str, list[str], int],
    embedder: MiniLMEmbedder,
    tokens: TokenCounter,
) -> None:
    question, passages, answer = case
    config = TrimConfig(ranking=ranking, dense_unit=unit)  # type: ignore[arg-type]
    trimmer = PassageTrimmer(config, tokens)
    result = trimmer.trim(question, passages, MODEL, embedder, KeepPolicy(top_k=1))
    assert result.kept == (answer,)
    assert result.kept_passages == [passages[answer]]


def test_bm25_alone_falls_for_shared_words(tokens: TokenCounter) -> None:
    """Why the default is hybrid: "sea level" outweighs "boils" for BM25, not for MiniLM."""
    trimmer = PassageTrimmer(TrimConfig(ranking="bm25"), tokens)
    question, passages, _ = CASES[0]
    assert trimmer.trim(question, passages, MODEL, None, KeepPolicy(top_k=1)).kept == (4,)
    question, passages, answer = CASES[1]
    assert trimmer.trim(question, passages, MODEL, None, KeepPolicy(top_k=1)).kept == (answer,)


def test_token_counts_before_and_after_are_the_counters(
    embedder: MiniLMEmbedder, tokens: TokenCounter
) -> None:
    question, passages, _ = CASES[0]
    result = PassageTrimmer(TrimConfig(), tokens).trim(
        question, passages, MODEL, embedder, KeepPolicy(top_k=2)
    )
    counts = [tokens.count(MODEL, p) for p in passages]
    assert result.tokens_before == sum(counts)
    assert result.tokens_after == sum(counts[i] for i in result.kept)
    assert result.tokens_saved == result.tokens_before - result.tokens_after
    assert len(result.kept) == 2
    assert result.kept_in_original_order == [passages[i] for i in sorted(result.kept)]


def test_budget_is_respected_exactly(embedder: MiniLMEmbedder, tokens: TokenCounter) -> None:
    question, passages, _ = CASES[1]
    trimmer = PassageTrimmer(TrimConfig(), tokens)
    order = trimmer.trim(question, passages, MODEL, embedder, KeepPolicy()).kept
    counts = [tokens.count(MODEL, p) for p in passages]
    best_two = counts[order[0]] + counts[order[1]]

    exact = trimmer.trim(question, passages, MODEL, embedder, KeepPolicy(max_tokens=best_two))
    assert exact.kept[:2] == order[:2]
    assert exact.tokens_after <= best_two
    assert exact.tokens_after == sum(counts[i] for i in exact.kept)

    short = trimmer.trim(question, passages, MODEL, embedder, KeepPolicy(max_tokens=best_two - 1))
    assert order[1] not in short.kept or order[0] not in short.kept
    assert short.tokens_after <= best_two - 1


def _ranked(scores: list[float]) -> Ranked:
    values = np.asarray(scores, dtype=np.float64)
    return Ranked(tuple(int(i) for i in np.argsort(-values, kind="stable")), values)


def test_budget_skips_a_passage_too_big_and_tries_the_next() -> None:
    ranked = _ranked([3.0, 2.0, 1.0, 0.0])
    assert select(ranked, [50, 80, 30, 10], KeepPolicy(max_tokens=90)) == (0, 2, 3)
    assert select(ranked, [100, 80, 30, 10], KeepPolicy(max_tokens=90)) == (1, 3)
    assert select(ranked, [100, 100, 100, 100], KeepPolicy(max_tokens=99)) == ()


def test_cutoff_keeps_scores_within_it_of_the_best() -> None:
    ranked = _ranked([1.0, 3.0, 2.5, 2.0, -1.0])
    assert select(ranked, [1] * 5, KeepPolicy(cutoff=0.5)) == (1, 2)
    assert select(ranked, [1] * 5, KeepPolicy(cutoff=1.0)) == (1, 2, 3)
    assert select(ranked, [1] * 5, KeepPolicy(cutoff=0.0)) == (1,)
    # min_keep overrides the cut-off, not top_k or the budget
    assert select(ranked, [1] * 5, KeepPolicy(cutoff=0.1, min_keep=3)) == (1, 2, 3)
    assert select(ranked, [1] * 5, KeepPolicy(cutoff=5, top_k=2)) == (1, 2)


def test_fusions_score_scales() -> None:
    dense = np.asarray([0.9, 0.1, 0.5])
    lexical = np.asarray([2.0, 8.0, 5.0])
    minmax = fuse([(dense, 0.5), (lexical, 0.5)], "minmax", 60)
    assert minmax == pytest.approx([0.5, 0.5, 0.5])
    rrf = fuse([(dense, 1.0)], "rrf", 60)
    assert rrf[0] == pytest.approx(1.0)  # the best rank scores 1
    assert rrf[2] == pytest.approx(61 / 62)
    z = fuse([(dense, 1.0)], "zscore", 60)
    assert z.mean() == pytest.approx(0.0)
    assert z.std() == pytest.approx(1.0)
    flat = fuse([(np.ones(3), 1.0)], "zscore", 60)
    assert flat == pytest.approx([0.0, 0.0, 0.0])


def test_no_passages_keeps_nothing(embedder: MiniLMEmbedder, tokens: TokenCounter) -> None:
    result = PassageTrimmer(TrimConfig(), tokens).trim("anything?", [], MODEL, embedder)
    assert result.kept == ()
    assert result.tokens_before == result.tokens_after == 0


def test_dense_ranking_needs_an_embedder(tokens: TokenCounter) -> None:
    with pytest.raises(ValueError, match="embedder"):
        PassageTrimmer(TrimConfig(ranking="dense"), tokens).trim("q", ["p"], MODEL, None)


@pytest.fixture
def pool(embedder: MiniLMEmbedder) -> Iterator[EmbeddingPool]:
    pool = EmbeddingPool(embedder, threads=1)
    yield pool
    pool.close()


async def test_async_trim_matches_sync(
    embedder: MiniLMEmbedder, tokens: TokenCounter, pool: EmbeddingPool
) -> None:
    question, passages, _ = CASES[1]
    trimmer = PassageTrimmer(TrimConfig(), tokens)
    policy = KeepPolicy(top_k=3)
    sync = trimmer.trim(question, passages, MODEL, embedder, policy)
    async_ = await trimmer.trim_async(question, passages, MODEL, pool, policy)
    assert async_.kept == sync.kept
    assert async_.scores == pytest.approx(sync.scores, abs=1e-5)


def test_tokenize_folds_plurals_and_drops_stop_words() -> None:
    assert tokenize("The cells and the studies of viruses, IL-6") == [
        "cell",
        "study",
        "viruse",
        "il",
        "6",
    ]
    assert tokenize("analysis of mass") == ["analysis", "mass"]


def test_corpus_statistics_weight_rare_terms() -> None:
    docs = [["common", "rare"], ["common"], ["common"], ["common"]]
    stats = CorpusStats.from_tokens(docs)
    assert stats.idf("rare") > stats.idf("common") > 0
    assert stats.idf("never-seen") > stats.idf("rare")
    # Scoring two candidates with the corpus's statistics, not their own.
    index = Bm25Index([["common"], ["rare"]], stats=stats)
    scores = index.score(["common", "rare"])
    assert scores[1] > scores[0]


def test_sentence_trimming_keeps_each_passages_best_sentences(
    embedder: MiniLMEmbedder, tokens: TokenCounter
) -> None:
    question = "Which drug lowers LDL cholesterol by inhibiting HMG-CoA reductase?"
    long_answer = (
        "The trial enrolled 4,000 adults in 12 countries. "
        "Statins such as atorvastatin inhibit HMG-CoA reductase and lower LDL cholesterol. "
        "Follow-up lasted five years."
    )
    passages = ["The Great Wall of China is long. It was built over centuries.", long_answer]
    config = TrimConfig(ranking="hybrid", dense_unit="sentence")
    policy = KeepPolicy(top_k=1, sentences_per_passage=1)
    result = PassageTrimmer(config, tokens).trim(question, passages, MODEL, embedder, policy)
    assert result.kept == (1,)
    [sent] = result.kept_passages
    assert sent.startswith("Statins such as atorvastatin") and "trial" not in sent
    assert result.tokens_before == sum(tokens.count(MODEL, p) for p in passages)
    assert result.tokens_after == tokens.count(MODEL, sent)
    # two sentences come back in their original order
    two = PassageTrimmer(config, tokens).trim(
        question, passages, MODEL, embedder, KeepPolicy(top_k=1, sentences_per_passage=2)
    )
    [text] = two.kept_passages
    in_order = [s for s in split_sentences(long_answer) if s in text]
    assert len(in_order) == 2 and "Statins" in text
    assert text == " ".join(in_order)


def test_sentence_trimming_needs_the_sentence_unit(
    embedder: MiniLMEmbedder, tokens: TokenCounter
) -> None:
    with pytest.raises(ValueError, match="dense_unit"):
        TrimConfig(dense_unit="passage", policy=KeepPolicy(sentences_per_passage=1))
    trimmer = PassageTrimmer(TrimConfig(dense_unit="passage"), tokens)
    with pytest.raises(ValueError, match="sentence"):
        trimmer.trim("q", ["a. B."], MODEL, embedder, KeepPolicy(sentences_per_passage=1))


class CountingWords:
    """A stand-in embedder that records every text it embeds: hashed bag of words."""

    name = "counting-words"
    dim = 64

    def __init__(self) -> None:
        self.seen: list[str] = []

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.seen.extend(texts)
        rows = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in tokenize(text):
                rows[i, zlib.crc32(word.encode()) % self.dim] += 1.0
        return normalise(rows)


QUESTION = "Do statins lower LDL cholesterol in adults with diabetes?"
# Each passage: a title line, then sentences; the first stage reads titles only.
STAGED = [
    "Statins and LDL cholesterol\nStatins lower LDL cholesterol. Adults with diabetes benefit.",
    "Insulin therapy\nInsulin regulates glucose. It is injected daily. Doses vary by meal.",
    "LDL cholesterol in diabetes\nDiabetes raises LDL. Statins are first-line in adults.",
    "The Eiffel Tower\nIt was completed in 1889. It is in Paris. Tourists climb it.",
    "Blood pressure drugs\nBeta blockers slow the heart. They lower blood pressure.",
    "Photosynthesis\nPlants convert light. Chlorophyll absorbs red and blue light.",
]


def test_two_stages_embed_only_the_sentences_of_the_first_stages_best(
    tokens: TokenCounter,
) -> None:
    config = TrimConfig(rerank_top=2, lead_sentences=1)
    embedder = CountingWords()
    trimmer = PassageTrimmer(config, tokens)
    result = trimmer.trim(QUESTION, STAGED, MODEL, embedder, KeepPolicy(top_k=6))

    lead = [split_sentences(p)[0] for p in STAGED]
    first = rank_scores(config, dense_scores(*_rows(QUESTION, lead)), _bm25(QUESTION, STAGED))
    top = first.order[:2]
    rest = [s for i in top for s in split_sentences(STAGED[i])[1:]]
    assert embedder.seen == [QUESTION, *lead, *rest]  # nothing else, nothing twice
    for index in first.order[2:]:
        assert not set(split_sentences(STAGED[index])[1:]) & set(embedder.seen)
    # the second stage's two come first, the others after them in the first stage's order
    assert set(result.kept[:2]) == set(top)
    assert result.kept[2:] == first.order[2:]
    assert max(result.scores[list(first.order[2:])]) <= min(result.scores[list(top)]) - 1


def _rows(question: str, texts: list[str]) -> tuple[Vectors, Vectors]:
    rows = CountingWords().embed([question, *texts])
    return rows[0], rows[1:]


def _bm25(question: str, passages: list[str]) -> Scores:
    return Bm25Index([tokenize(p) for p in passages]).score(tokenize(question))


@pytest.mark.parametrize("top", [6, 7, 50])
@pytest.mark.parametrize(
    "policy", [KeepPolicy(top_k=3), KeepPolicy(top_k=2, sentences_per_passage=1)]
)
def test_two_stages_over_every_passage_are_the_one_stage_ranking(
    top: int, policy: KeepPolicy, tokens: TokenCounter
) -> None:
    one = PassageTrimmer(TrimConfig(rerank_top=None), tokens)
    two = PassageTrimmer(TrimConfig(rerank_top=top), tokens)
    expected = one.trim(QUESTION, STAGED, MODEL, CountingWords(), policy)
    got = two.trim(QUESTION, STAGED, MODEL, CountingWords(), policy)
    assert got.kept == expected.kept
    assert got.texts == expected.texts
    assert got.scores == pytest.approx(expected.scores, abs=1e-6)


def test_rerank_keeps_the_first_order_below_the_reranked() -> None:
    config = TrimConfig(rerank_top=2, fusion="minmax", ranking="dense")
    first = _ranked([0.1, 0.9, 0.5, 0.7])  # order 1, 3, 2, 0
    dense = np.asarray([9.0, 0.2, 9.0, 0.8])  # only 1 and 3 are read
    ranked = rerank(config, first, dense, None)
    assert ranked.order == (3, 1, 2, 0)
    assert ranked.scores[3] == pytest.approx(1.0) and ranked.scores[1] == pytest.approx(0.0)
    assert ranked.scores[2] <= -1.0 and ranked.scores[0] < ranked.scores[2]
    everything = rerank(config.model_copy(update={"rerank_top": 4}), first, dense, None)
    assert everything.order == (0, 2, 3, 1)


async def test_two_stages_async_through_the_cache_embed_each_text_once(
    tokens: TokenCounter,
) -> None:
    embedder = CountingWords()
    pool = EmbeddingPool(embedder, threads=1)
    cache = VectorCache(1000)
    trimmer = PassageTrimmer(TrimConfig(rerank_top=2), tokens)
    try:
        cold = await trimmer.trim_async(QUESTION, STAGED, MODEL, pool, cache=cache)
        embedded = len(embedder.seen)
        warm = await trimmer.trim_async(QUESTION, STAGED, MODEL, pool, cache=cache)
    finally:
        pool.close()
    sync = trimmer.trim(QUESTION, STAGED, MODEL, CountingWords())
    assert cold.kept == warm.kept == sync.kept
    assert cold.scores == pytest.approx(sync.scores, abs=1e-5)
    assert len(set(embedder.seen[:embedded])) == embedded  # no text embedded twice
    assert embedder.seen[embedded:] == [QUESTION]  # warm: only the question
