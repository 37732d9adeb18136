"""The trimming evaluation on SciFact: evidence kept vs input tokens kept.

For each claim with evidence the candidates are its evidence abstracts + 30 hard distractors
(``scifact.build_candidates``). Each ranking orders them and each keep policy keeps some; the
evaluation counts

- evidence kept: the share of all evidence abstracts that were kept (micro average);
- claims whole: the share of claims all of whose evidence abstracts were kept;
- tokens kept: passage tokens kept over passage tokens of all candidates (what "send
  everything" costs), both counted with the project's ``TokenCounter``.

Settings are chosen on one half of the claims (a seeded split) and reported on the other:
the ranking with the best mean evidence recall over top-1 … top-10, then per policy family
(top-k, token budget, cut-off) the cheapest setting keeping >= 95 % of the evidence.

Two stages (``TrimConfig.rerank_top``): the best ranking, with its first stage reading each
passage's first sentence; ``rerank_top`` is the smallest whose first stage holds
>= 97.5 % of the evidence on the tuning half (the second stage and the cut-off lose about two
points of what reaches them), then the policies are chosen as above.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from costwarden.savings.embedding import Embedder
from costwarden.savings.trimming.config import DenseUnit, Fusion, KeepPolicy, TrimConfig
from costwarden.savings.trimming.scifact import (
    Abstract,
    Candidates,
    DistractorMiner,
    build_candidates,
    load_claims,
    load_corpus,
    split_halves,
)
from costwarden.savings.trimming.signals import (
    ClaimSignals,
    EvalVectors,
    compute_signals,
    embed_all,
)
from costwarden.savings.trimming.trimmer import Ranked, rank_scores, rerank, select, two_stage

LexicalSource = Literal["local", "corpus"]
RECALL_TARGET = 0.95
FIRST_STAGE_RECALL = 0.975
RERANK_TOPS = range(5, 41)
LEAD_SENTENCES = 1


class EvalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path
    distractors: int = 30
    seed: int = 13
    model: str = "gpt-4o-mini"  # whose tokenizer counts the tokens
    embed_max_tokens: int = 128
    cache_dir: Path | None = Path(".cache") / "embeddings"


@dataclass(frozen=True, slots=True)
class RankerSpec:
    label: str
    config: TrimConfig
    lexical: LexicalSource = "local"


@dataclass(frozen=True, slots=True)
class Metrics:
    ranking: str
    policy: str
    claims: int
    evidence_kept: float
    claims_whole: float
    tokens_kept: float
    passages_kept: float


@dataclass(frozen=True, slots=True)
class Prepared:
    corpus: dict[int, Abstract]
    miner: DistractorMiner
    vectors: EvalVectors
    tune: list[ClaimSignals]
    test: list[ClaimSignals]


def _first_stage(spec: RankerSpec, claim: ClaimSignals) -> Ranked:
    lexical = claim.bm25_corpus if spec.lexical == "corpus" else claim.bm25_local
    return rank_scores(spec.config, claim.dense_lead(spec.config.lead_sentences), lexical)


def rank_claim(spec: RankerSpec, claim: ClaimSignals) -> Ranked:
    """The candidates ranked as ``PassageTrimmer`` ranks them under ``spec.config``."""
    lexical = claim.bm25_corpus if spec.lexical == "corpus" else claim.bm25_local
    if two_stage(spec.config):
        return rerank(spec.config, _first_stage(spec, claim), claim.dense_sentence, lexical)
    return rank_scores(spec.config, claim.dense_for(spec.config.dense_unit), lexical)


def first_stage_recall(signals: Sequence[ClaimSignals], spec: RankerSpec, top: int) -> float:
    """Share of the evidence among the first stage's best ``top`` (what the second can rank)."""
    total = hits = 0
    for claim in signals:
        best = set(_first_stage(spec, claim).order[:top])
        total += len(claim.evidence)
        hits += sum(1 for i in claim.evidence if i in best)
    return hits / max(total, 1)


def measure(
    signals: Sequence[ClaimSignals], spec: RankerSpec, policy: KeepPolicy, label: str
) -> Metrics:
    evidence_total = evidence_kept = whole = tokens_all = tokens_kept = passages = 0
    for claim in signals:
        ranked = rank_claim(spec, claim)
        kept = set(select(ranked, claim.tokens, policy))
        hits = sum(1 for i in claim.evidence if i in kept)
        evidence_total += len(claim.evidence)
        evidence_kept += hits
        whole += hits == len(claim.evidence)
        tokens_all += sum(claim.tokens)
        tokens_kept += sum(claim.tokens[i] for i in kept)
        passages += len(kept)
    n = max(len(signals), 1)
    return Metrics(
        ranking=spec.label,
        policy=label,
        claims=len(signals),
        evidence_kept=evidence_kept / max(evidence_total, 1),
        claims_whole=whole / n,
        tokens_kept=tokens_kept / max(tokens_all, 1),
        passages_kept=passages / n,
    )


def baselines() -> list[RankerSpec]:
    """One-stage rankings (every sentence scored), like the hybrids they are compared with."""
    dense_sentence = TrimConfig(ranking="dense", dense_unit="sentence", rerank_top=None)
    return [
        RankerSpec("dense passage", TrimConfig(ranking="dense", dense_unit="passage")),
        RankerSpec("dense sentence", dense_sentence),
        RankerSpec("bm25", TrimConfig(ranking="bm25")),
        RankerSpec("bm25 corpus-idf", TrimConfig(ranking="bm25"), "corpus"),
    ]


def hybrids() -> list[RankerSpec]:
    fusions: tuple[Fusion, ...] = ("zscore", "minmax", "rrf")
    units: tuple[DenseUnit, ...] = ("passage", "sentence")
    sources: tuple[LexicalSource, ...] = ("local", "corpus")
    specs: list[RankerSpec] = []
    for fusion in fusions:
        for unit in units:
            for weight in (0.3, 0.4, 0.5, 0.6, 0.7):
                for source in sources:
                    config = TrimConfig(
                        ranking="hybrid",
                        fusion=fusion,
                        dense_unit=unit,
                        dense_weight=weight,
                        rerank_top=None,
                    )
                    suffix = " corpus-idf" if source == "corpus" else ""
                    label = f"hybrid {fusion} {unit} w={weight}{suffix}"
                    specs.append(RankerSpec(label, config, source))
    return specs


def ranking_quality(signals: Sequence[ClaimSignals], spec: RankerSpec) -> float:
    """Mean evidence recall over top-1 … top-10: one number to compare rankings by."""
    recalls = [
        measure(signals, spec, KeepPolicy(top_k=k), f"top-{k}").evidence_kept for k in range(1, 11)
    ]
    return sum(recalls) / len(recalls)


def policy_grid() -> dict[str, list[tuple[str, KeepPolicy]]]:
    """Each policy family's settings, from cheapest to most generous."""
    return {
        "top-k": [(f"top-{k}", KeepPolicy(top_k=k)) for k in range(1, 21)],
        "budget": [(f"budget {b}", KeepPolicy(max_tokens=b)) for b in range(250, 8001, 250)],
        "cut-off": [(f"cut-off {c / 20:g}", KeepPolicy(cutoff=c / 20)) for c in range(1, 81)],
    }


def cheapest_meeting_target(
    signals: Sequence[ClaimSignals], spec: RankerSpec, settings: list[tuple[str, KeepPolicy]]
) -> tuple[str, KeepPolicy] | None:
    for label, policy in settings:
        if measure(signals, spec, policy, label).evidence_kept >= RECALL_TARGET:
            return label, policy
    return None


def reported_policies(config: TrimConfig) -> list[tuple[str, KeepPolicy]]:
    """The fixed grid every ranking is shown with; cut-offs only where the scale is z-scores."""
    rows = [(f"top-{k}", KeepPolicy(top_k=k)) for k in (1, 2, 3, 5, 7, 10)]
    rows += [(f"budget {b}", KeepPolicy(max_tokens=b)) for b in (1000, 2000, 3000)]
    if config.fusion == "zscore":
        rows += [(f"cut-off {c:g}", KeepPolicy(cutoff=c)) for c in (0.5, 1.0, 1.5)]
    return rows


def prepare(settings: EvalSettings, embedder: Embedder) -> Prepared:
    """Candidates, embeddings and signals of every claim, split into (tune, test) halves."""
    corpus = load_corpus(settings.data_dir / "corpus.jsonl")
    claims = load_claims(settings.data_dir / "claims_train.jsonl")
    miner = DistractorMiner(corpus)
    sets = build_candidates(claims, miner, settings.distractors, settings.seed)
    vectors = embed_all(corpus, sets, embedder, settings.cache_dir)
    signals = compute_signals(sets, corpus, vectors, stats=miner.stats, model=settings.model)
    tune_claims, _ = split_halves(claims, settings.seed)
    tune_ids = {c.claim_id for c in tune_claims}
    return Prepared(
        corpus=corpus,
        miner=miner,
        vectors=vectors,
        tune=[s for s in signals if s.candidates.claim.claim_id in tune_ids],
        test=[s for s in signals if s.candidates.claim.claim_id not in tune_ids],
    )


Picks = dict[str, tuple[str, KeepPolicy] | None]


@dataclass(frozen=True, slots=True)
class Choice:
    ranking: RankerSpec  # the best hybrid
    policies: Picks  # its cheapest policy per family
    fast: RankerSpec  # the best hybrid scoring whole passages (~3x less to embed)
    fast_policies: Picks
    quality: dict[str, float]
    staged: RankerSpec  # the best hybrid in two stages
    staged_policies: Picks
    first_stage_recall: dict[int, float]  # on the tuning half, by rerank_top


def choose_two_stage(
    tune: Sequence[ClaimSignals], best: RankerSpec
) -> tuple[RankerSpec, dict[int, float]]:
    """``best`` in two stages, with the smallest ``rerank_top`` whose first stage holds
    ``FIRST_STAGE_RECALL`` of the tuning half's evidence (the largest tried if none does)."""
    lead = best.config.model_copy(update={"lead_sentences": LEAD_SENTENCES})
    probe = RankerSpec(best.label, lead, best.lexical)
    recall = {top: first_stage_recall(tune, probe, top) for top in RERANK_TOPS}
    top = next((t for t in RERANK_TOPS if recall[t] >= FIRST_STAGE_RECALL), RERANK_TOPS[-1])
    config = TrimConfig.model_validate(
        {**lead.model_dump(), "rerank_top": top, "policy": best.config.policy.model_dump()}
    )
    label = f"2-stage hybrid M={top}"
    return RankerSpec(label, config, best.lexical), recall


def _picks(tune: Sequence[ClaimSignals], spec: RankerSpec) -> Picks:
    return {
        family: cheapest_meeting_target(tune, spec, grid) for family, grid in policy_grid().items()
    }


def choose(tune: Sequence[ClaimSignals]) -> Choice:
    """The best hybrid ranking and each family's cheapest policy, on the tuning half only.
    Only rankings with candidate-local BM25 statistics are chosen: that is what the gateway
    has (a request brings its passages, not the corpus they came from)."""
    specs = [*baselines(), *hybrids()]
    quality = {spec.label: ranking_quality(tune, spec) for spec in specs}
    local = [s for s in hybrids() if s.lexical == "local"]
    best = max(local, key=lambda s: quality[s.label])
    fast = max(
        (s for s in local if s.config.dense_unit == "passage"), key=lambda s: quality[s.label]
    )
    staged, recall = choose_two_stage(tune, best)
    return Choice(
        best,
        _picks(tune, best),
        fast,
        _picks(tune, fast),
        quality,
        staged,
        _picks(tune, staged),
        recall,
    )


def _tuned_rows(test: Sequence[ClaimSignals], spec: RankerSpec, picks: Picks) -> list[Metrics]:
    return [
        measure(test, spec, pick[1], f"{pick[0]} (tuned: {family})")
        for family, pick in picks.items()
        if pick is not None
    ]


def report_rows(test: Sequence[ClaimSignals], choice: Choice) -> list[Metrics]:
    rows: list[Metrics] = []
    for spec in [*baselines(), choice.ranking]:
        policies = reported_policies(spec.config)
        rows.extend(measure(test, spec, policy, label) for label, policy in policies)
    rows += _tuned_rows(test, choice.ranking, choice.policies)
    rows.append(measure(test, choice.fast, KeepPolicy(top_k=5), "top-5"))
    rows += _tuned_rows(test, choice.fast, choice.fast_policies)
    rows.append(measure(test, choice.staged, KeepPolicy(top_k=5), "top-5"))
    rows += _tuned_rows(test, choice.staged, choice.staged_policies)
    return rows


def latency_sets(prepared: Prepared, requests: int, seed: int) -> list[Candidates]:
    """~50 passages per request: test claims' evidence + BM25 neighbours up to 50."""
    claims = [s.candidates.claim for s in prepared.test[:requests]]
    return [
        build_candidates([claim], prepared.miner, 50 - len(claim.evidence), seed)[0]
        for claim in claims
    ]


def summary(settings: EvalSettings, prepared: Prepared, choice: Choice) -> dict[str, Any]:
    test = prepared.test
    return {
        "settings": json.loads(settings.model_dump_json()),
        "claims": {"tune": len(prepared.tune), "test": len(test)},
        "split": "seeded shuffle of claim ids (seed = settings.seed); first half tunes",
        "candidates_per_claim": _mean([len(s.tokens) for s in test]),
        "tokens_per_claim": _mean([sum(s.tokens) for s in test]),
        "chosen_ranking": choice.ranking.label,
        "chosen_config": json.loads(choice.ranking.config.model_dump_json()),
        "chosen_policies_tune": _labels(choice.policies),
        "fast_ranking": choice.fast.label,
        "fast_config": json.loads(choice.fast.config.model_dump_json()),
        "fast_policies_tune": _labels(choice.fast_policies),
        "staged_ranking": choice.staged.label,
        "staged_config": json.loads(choice.staged.config.model_dump_json()),
        "staged_policies_tune": _labels(choice.staged_policies),
        "first_stage_recall_tune": {str(k): v for k, v in choice.first_stage_recall.items()},
        "ranking_quality_tune": dict(sorted(choice.quality.items(), key=lambda kv: -kv[1])),
        "test": [asdict(r) for r in report_rows(test, choice)],
    }


def _labels(picks: Picks) -> dict[str, str | None]:
    return {family: pick[0] if pick else None for family, pick in picks.items()}


def _mean(values: Sequence[int]) -> float:
    return sum(values) / max(len(values), 1)
