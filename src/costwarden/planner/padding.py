"""Static batching with padding vs continuous batching: the compute wasted, and what it costs.

Static batching runs B requests together until the longest is done: every sequence is padded to
the batch's longest prompt and decodes for as many steps as the longest answer. With request
cost ``output + w·input`` token-steps, the expected waste is closed-form from order statistics:

    waste_static = 1 − (E[out] + w·E[in]) / (E[max of B outs] + w·E[max of B ins])

Continuous (in-flight) batching refills a slot as soon as its sequence ends, so only the drain
at the very end idles slots; a list-scheduling simulation measures it. Throughput scales with
the useful share, so static costs (1 − waste_cont) / (1 − waste_static) times as much per token.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
from pydantic import Field

from costwarden.planner.lengths import LengthDistribution, LengthSource, parse_lengths
from costwarden.planner.report import Explanation, fmt_num, fmt_pct
from costwarden.planner.scenario import PlanModel

_TABLE_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128)


class PaddingInputs(PlanModel):
    output_lengths: LengthSource = Field(description="fixed:N | uniform:A,B | lognormal:M,S[,CAP]")
    input_lengths: LengthSource | None = Field(None, description="prompt lengths (same forms)")
    batch_size: int = Field(16, ge=1, description="static batch size B")
    input_token_weight: Decimal = Field(Decimal("0.3"), ge=0, description="prompt vs output cost")
    simulate_requests: int = Field(20000, ge=0, description="requests simulated (0: none)")
    seed: int = Field(0, description="random seed of the simulation")


@dataclass(frozen=True, slots=True)
class BatchRow:
    batch_size: int
    expected_max_output: float
    waste: float  # closed form


@dataclass(frozen=True, slots=True)
class PaddingResult:
    inputs: PaddingInputs
    outputs: LengthDistribution
    prompts: LengthDistribution | None
    mean_cost: float  # token-steps per request, no padding
    padded_cost: float  # token-steps per request in a static batch (expected)
    static_waste: float
    rows: tuple[BatchRow, ...]
    simulated_static_waste: float | None
    simulated_continuous_waste: float | None

    @property
    def continuous_waste(self) -> float:
        return self.simulated_continuous_waste or 0.0

    @property
    def throughput_ratio(self) -> float:
        """Continuous throughput ÷ static throughput (useful tokens per second)."""
        return (1 - self.continuous_waste) / (1 - self.static_waste)

    @property
    def cost_ratio(self) -> Decimal:
        """What static batching costs per useful token, relative to continuous batching."""
        return Decimal(repr(round(self.throughput_ratio, 6)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "output_lengths": self.outputs.label,
            "input_lengths": None if self.prompts is None else self.prompts.label,
            "batch_size": self.inputs.batch_size,
            "mean_cost": self.mean_cost,
            "padded_cost": self.padded_cost,
            "static_waste": self.static_waste,
            "simulated_static_waste": self.simulated_static_waste,
            "simulated_continuous_waste": self.simulated_continuous_waste,
            "throughput_ratio": self.throughput_ratio,
            "cost_ratio": f"{self.cost_ratio:f}",
            "rows": [
                {
                    "batch_size": r.batch_size,
                    "expected_max_output": r.expected_max_output,
                    "waste": r.waste,
                }
                for r in self.rows
            ],
        }


def static_waste(
    outputs: LengthDistribution, prompts: LengthDistribution | None, batch: int, weight: float
) -> tuple[float, float, float]:
    """(mean cost, expected padded cost, waste share) of one request in a static batch."""
    mean = outputs.mean
    padded = outputs.expected_max(batch)
    if prompts is not None:
        mean += weight * prompts.mean
        padded += weight * prompts.expected_max(batch)
    return mean, padded, max(0.0, 1 - mean / padded)


def simulate_static(costs: np.ndarray[Any, Any], padded: np.ndarray[Any, Any], batch: int) -> float:
    """Waste of running the sampled requests in consecutive batches of ``batch``."""
    whole = costs.size // batch * batch
    if whole == 0:
        raise ValueError("simulate more requests than one batch")
    batches = padded[:whole].reshape(-1, batch)
    return 1 - float(costs[:whole].sum()) / float(batches.max(axis=1).sum() * batch)


def simulate_continuous(costs: np.ndarray[Any, Any], slots: int) -> float:
    """Waste of list scheduling: each request starts in the first slot to free up."""
    finish = [0.0] * slots
    for cost in costs.tolist():
        heapq.heappush(finish, heapq.heappop(finish) + cost)
    return 1 - float(costs.sum()) / (slots * max(finish))


def padding(inputs: PaddingInputs) -> PaddingResult:
    outputs = parse_lengths(inputs.output_lengths)
    prompts = None if inputs.input_lengths is None else parse_lengths(inputs.input_lengths)
    weight = float(inputs.input_token_weight)
    mean, padded, waste = static_waste(outputs, prompts, inputs.batch_size, weight)
    rows = tuple(
        BatchRow(b, outputs.expected_max(b), static_waste(outputs, prompts, b, weight)[2])
        for b in sorted({*_TABLE_BATCHES, inputs.batch_size})
    )
    sim_static = sim_continuous = None
    if inputs.simulate_requests:
        rng = np.random.default_rng(inputs.seed)
        outs = outputs.sample(rng, inputs.simulate_requests).astype(np.float64)
        ins = np.zeros_like(outs)
        if prompts is not None:
            ins = prompts.sample(rng, inputs.simulate_requests).astype(np.float64)
        costs = outs + weight * ins
        # Static pads prompts and answers separately: a batch costs max(out) + w·max(in).
        sim_static = _static_two_part(outs, ins, weight, inputs.batch_size)
        sim_continuous = simulate_continuous(costs, inputs.batch_size)
    return PaddingResult(
        inputs, outputs, prompts, mean, padded, waste, rows, sim_static, sim_continuous
    )


def _static_two_part(
    outs: np.ndarray[Any, Any], ins: np.ndarray[Any, Any], weight: float, batch: int
) -> float:
    whole = outs.size // batch * batch
    if whole == 0:
        raise ValueError("simulate more requests than one batch")
    out_max = outs[:whole].reshape(-1, batch).max(axis=1)
    in_max = ins[:whole].reshape(-1, batch).max(axis=1)
    useful = float(outs[:whole].sum() + weight * ins[:whole].sum())
    return 1 - useful / float((out_max + weight * in_max).sum() * batch)


def explain_padding(result: PaddingResult) -> Explanation:
    inputs = result.inputs
    b = inputs.batch_size
    out = Explanation(f"Padding: static batches of {b} vs continuous batching")
    out.assume("output lengths", result.outputs.label, f"mean {result.outputs.mean:.1f}")
    if result.prompts is not None:
        out.assume("prompt lengths", result.prompts.label, f"mean {result.prompts.mean:.1f}")
        out.assume(
            "prompt-token weight w",
            inputs.input_token_weight,
            "prefill cost of a prompt token relative to a generated one",
        )
    out.step(
        f"E[max of {b} outputs] = Σ v·(F(v)^{b} − F(v−1)^{b}) = "
        f"{result.outputs.expected_max(b):.1f} tokens (mean {result.outputs.mean:.1f})"
    )
    if result.prompts is not None:
        out.step(
            f"E[max of {b} prompts] = {result.prompts.expected_max(b):.1f} tokens "
            f"(mean {result.prompts.mean:.1f})"
        )
    out.step(
        f"static waste = 1 − {result.mean_cost:.1f} ÷ {result.padded_cost:.1f} = "
        f"{fmt_pct(result.static_waste)}"
    )
    if result.simulated_static_waste is not None:
        out.step(
            f"simulated ({inputs.simulate_requests} requests, seed {inputs.seed}): static "
            f"{fmt_pct(result.simulated_static_waste)}, continuous "
            f"{fmt_pct(result.continuous_waste, 2)} (only the final drain)"
        )
    out.step(
        f"throughput continuous ÷ static = (1 − {result.continuous_waste:.4f}) ÷ "
        f"(1 − {result.static_waste:.4f}) = {result.throughput_ratio:.3f}×"
    )
    out.table(
        "Static batching waste by batch size",
        ("batch", "E[max out]", "waste", "cost ×"),
        [
            (
                r.batch_size,
                fmt_num(r.expected_max_output, 1),
                fmt_pct(r.waste),
                f"{1 / (1 - r.waste):.2f}",
            )
            for r in result.rows
        ],
    )
    out.verdict = (
        f"static batches of {b} waste {fmt_pct(result.static_waste)} of the compute; "
        f"continuous batching serves {result.throughput_ratio:.2f}× the tokens per "
        f"GPU-hour, so static costs {result.cost_ratio:.2f}× as much per token"
    )
    return out
