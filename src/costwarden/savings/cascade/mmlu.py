"""A real two-tier calibration set from MMLU, and FrugalGPT's published points to compare with.

RouteLLM's MMLU data says, per question, whether Mixtral-8x7B (the cheap tier) and GPT-4-1106
(the top tier) answered right — but holds no answers, no confidences and no token counts. So
the cheap tier's score here is not the gateway's scorer (refusal / logprob / verifier need the
answer text): it is a prompt-embedding kNN estimate of P(Mixtral is right) — how Mixtral did
on the most similar *other* questions — computed out of fold (K folds by hash of the prompt;
each fold scored by neighbours from the others), so no question's own label feeds its score.
Costs are the prompt's tokens (tiktoken) at each model's genai-prices list price, plus an
assumed number of output tokens (the data has none; an MMLU answer is a letter).

What this measures: how well the quantile search turns a real, informative score into a
cost/accuracy trade-off on real correctness labels. What it cannot: the quality of the
gateway's answer-based signals, which needs the tiers' answers.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
from genai_prices import Usage, calc_price

from costwarden.pricing import TokenCounter
from costwarden.savings.embedding import MiniLMEmbedder
from costwarden.savings.router.cache import DEFAULT_CACHE_DIR, cached_embeddings
from costwarden.savings.router.data import RoutingData, load_routing_csv
from costwarden.savings.router.knn import Floats, KnnHead, KnnSettings, Vectors

# (label, genai-prices model ref, provider): the models the data was collected on.
WEAK = ("mixtral-8x7b", "open-mixtral-8x7b", "mistral")
STRONG = ("gpt-4-1106-preview", "gpt-4-1106-preview", "openai")
_TOKENIZER_MODEL = "gpt-4"  # cl100k: one tokenizer for both, Mixtral's is within ~10 %


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per token, from genai-prices."""

    input: Decimal
    output: Decimal

    def cost(self, input_tokens: int, output_tokens: int) -> Decimal:
        return self.input * input_tokens + self.output * output_tokens


def list_rates(model_ref: str, provider: str) -> Rates:
    million = 1_000_000
    price = calc_price(Usage(input_tokens=million), model_ref=model_ref, provider_id=provider)
    out = calc_price(Usage(output_tokens=million), model_ref=model_ref, provider_id=provider)
    return Rates(price.total_price / million, out.total_price / million)


def fold_of(prompt: str, folds: int) -> int:
    digest = hashlib.sha256(b"cascade-fold:" + prompt.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % folds


def out_of_fold_scores(
    vectors: Vectors, correct: Floats, folds: Floats, settings: KnnSettings
) -> Floats:
    """P(right) per row from its neighbours in the other folds."""
    scores = np.zeros(len(correct))
    for fold in np.unique(folds):
        held = folds == fold
        head = KnnHead(vectors[~held], correct[~held], correct[~held], settings)
        scores[held] = head.predict(vectors[held])[0]
    return scores


def build_rows(
    data: RoutingData, vectors: Vectors, *, folds: int = 5, output_tokens: int = 1
) -> list[dict[str, object]]:
    """Calibration rows (``cascade_calibration`` JSONL shape) of the two-tier cascade."""
    fold_ids = np.asarray([fold_of(p, folds) for p in data.prompts])
    scores = out_of_fold_scores(vectors, data.weak, fold_ids, KnnSettings())
    counter = TokenCounter()
    weak_rates, strong_rates = list_rates(*WEAK[1:]), list_rates(*STRONG[1:])
    rows: list[dict[str, object]] = []
    for i, prompt in enumerate(data.prompts):
        tokens = counter.count(_TOKENIZER_MODEL, prompt)
        weak = {
            "model": WEAK[0],
            "score": round(float(scores[i]), 6),
            "correct": bool(data.weak[i] >= 0.5),
            "cost": float(weak_rates.cost(tokens, output_tokens)),
        }
        strong = {
            "model": STRONG[0],
            "correct": bool(data.strong[i] >= 0.5),
            "cost": float(strong_rates.cost(tokens, output_tokens)),
        }
        row_id = hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]
        rows.append({"id": row_id, "group": data.groups[i], "tiers": [weak, strong]})
    return rows


def write_mmlu_rows(
    source: Path, out: Path, *, folds: int = 5, output_tokens: int = 1, cache_dir: Path | None
) -> int:
    data = load_routing_csv(source)
    vectors = cached_embeddings(MiniLMEmbedder(), data.prompts, cache_dir or DEFAULT_CACHE_DIR)
    rows = build_rows(data, vectors, folds=folds, output_tokens=output_tokens)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    return len(rows)


@dataclass(frozen=True, slots=True)
class Anchor:
    """FrugalGPT's published result on one dataset: its cheapest budget point that matches
    the best single model's test accuracy."""

    dataset: str
    best_model: str
    best_accuracy: float
    best_cost: float
    frugal_accuracy: float
    frugal_cost: float

    @property
    def saving(self) -> float:
        return 1.0 - self.frugal_cost / self.best_cost


def frugalgpt_anchors(summary_dir: Path) -> list[Anchor]:
    """Read ``summary_<DATASET>_*.csv`` (FrugalGPT's published points); datasets where no
    budget point matches the best model are left out (COQA)."""
    anchors = []
    for path in sorted(summary_dir.glob("summary_*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        singles = [r for r in rows if r["Method"] != "FrugalGPT"]
        frugal = [r for r in rows if r["Method"] == "FrugalGPT"]
        best = max(singles, key=lambda r: float(r["Test_acc"]))
        matching = [r for r in frugal if float(r["Test_acc"]) >= float(best["Test_acc"])]
        if not matching:
            continue
        cheapest = min(matching, key=lambda r: float(r["Test_cost"]))
        anchors.append(
            Anchor(
                path.stem.split("_")[1],
                best["Method"],
                float(best["Test_acc"]),
                float(best["Test_cost"]),
                float(cheapest["Test_acc"]),
                float(cheapest["Test_cost"]),
            )
        )
    return anchors
