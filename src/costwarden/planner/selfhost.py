"""API vs self-hosted: cost per request and per 1M tokens across utilisation, the break-even
request rate, and how many GPUs a workload needs for a latency target.

A replica (``gpus_per_replica`` GPUs, ``H`` $/h) saturates at ``μ = tokens/s ÷ output tokens``
requests/s for this workload's lengths. Busy a share ``u`` of the paid time, a request costs
``H ÷ (3600 · μ · u)``; the API costs ``input·p_in + output·p_out`` whatever the load. So one
replica breaks even at ``u* = H ÷ (3600 · μ · c_api)``, i.e. at ``λ* = u*·μ`` requests/s; above
``u* = 1`` self-hosting never wins. Sizing uses M/M/c (``queueing.py``) with each replica as
``batch_slots`` servers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import Field

from costwarden.planner.gpus import Catalog, PriceKind, tokens_per_s_at
from costwarden.planner.queueing import mmc, replicas_needed
from costwarden.planner.report import Assumption, Explanation, fmt_hours, fmt_num, fmt_pct, fmt_usd
from costwarden.planner.scenario import (
    HOURS_PER_DAY,
    MILLION,
    SECONDS_PER_HOUR,
    ApiPrice,
    PlanModel,
    plain,
)

_DEFAULT_UTILISATIONS = tuple(
    Decimal(x) for x in ("0.1", "0.2", "0.3", "0.5", "0.7", "0.8", "0.9", "1")
)
_SECONDS_PER_DAY = Decimal(86400)


class SelfHostInputs(PlanModel):
    api: ApiPrice
    input_tokens: int = Field(gt=0, description="prompt tokens per request")
    output_tokens: int = Field(gt=0, description="generated tokens per request")
    requests_per_s: Decimal | None = Field(None, ge=0, description="workload (for sizing)")
    gpu: str | None = Field(None, description="catalog GPU (price and throughput)")
    model_class: str = Field("7b", description="catalog model class: 7b, 13b, 70b")
    price_kind: PriceKind = Field("on_demand", description="on_demand or spot")
    provider: str | None = Field(None, description="catalog price provider")
    gpu_hourly_usd: Decimal | None = Field(None, gt=0, description="USD per GPU-hour")
    gpus_per_replica: int | None = Field(None, ge=1, description="GPUs per model replica")
    throughput_tokens_per_s: Decimal | None = Field(
        None, gt=0, description="output tokens/s of one replica at these lengths (measured)"
    )
    input_token_weight: Decimal | None = Field(None, ge=0, description="prompt vs output cost")
    batch_slots: int = Field(32, ge=1, description="sequences a replica serves at once")
    max_utilisation: Decimal = Field(Decimal("0.8"), gt=0, le=1, description="sizing cap")
    latency_target_s: Decimal | None = Field(None, gt=0, description="p95 latency target")
    utilisations: tuple[Decimal, ...] = Field(_DEFAULT_UTILISATIONS, description="table rows")


@dataclass(frozen=True, slots=True)
class Serving:
    """One replica as resolved from the inputs and the catalog, with where each number came from."""

    hourly_usd: Decimal  # all GPUs of the replica
    gpus: int
    tokens_per_s: Decimal
    sources: tuple[Assumption, ...] = ()

    def capacity_rps(self, output_tokens: int) -> Decimal:
        return self.tokens_per_s / output_tokens


def resolve_serving(inputs: SelfHostInputs, catalog: Catalog) -> Serving:
    """Explicit numbers win; the rest comes from the catalog GPU (an error if neither)."""
    notes: list[Assumption] = []
    gpus = inputs.gpus_per_replica
    tokens = inputs.throughput_tokens_per_s
    hourly = inputs.gpu_hourly_usd
    if tokens is None or hourly is None:
        if inputs.gpu is None:
            raise ValueError(
                "give gpu (catalog) or both gpu_hourly_usd and throughput_tokens_per_s"
            )
        if hourly is None:
            price = catalog.price(inputs.gpu, inputs.price_kind, inputs.provider)
            hourly = price.usd_per_hour
            notes.append(Assumption(f"{inputs.gpu} {price.kind}", f"${hourly}/GPU-h", price.cite()))
        if tokens is None:
            figure = catalog.figure(
                inputs.gpu, inputs.model_class, inputs.input_tokens, inputs.output_tokens
            )
            weight, how = inputs.input_token_weight, "given"
            if weight is None:
                weight, how = catalog.input_weight(inputs.gpu, inputs.model_class)
            tokens = tokens_per_s_at(figure, inputs.input_tokens, inputs.output_tokens, weight)
            gpus = gpus or figure.gpus
            notes.append(
                Assumption(
                    f"{inputs.gpu} {inputs.model_class} throughput",
                    f"{figure.tokens_per_s} tok/s at {figure.input_tokens}/{figure.output_tokens} "
                    f"on {figure.gpus} GPU → {fmt_num(tokens, 0)} tok/s at "
                    f"{inputs.input_tokens}/{inputs.output_tokens} (w = {weight:.2f}, {how})",
                    figure.cite(),
                )
            )
    gpus = gpus or 1
    return Serving(hourly * gpus, gpus, tokens, tuple(notes))


@dataclass(frozen=True, slots=True)
class UtilisationRow:
    utilisation: Decimal
    per_request: Decimal
    per_mtok: Decimal  # per 1M tokens, input + output
    per_mtok_output: Decimal


@dataclass(frozen=True, slots=True)
class Sizing:
    requests_per_s: Decimal
    replicas: int
    gpus: int
    utilisation: float
    service_time_s: float  # one request with batch_slots sequences sharing the replica
    p95_wait_s: float
    fleet_usd_per_day: Decimal
    api_usd_per_day: Decimal
    feasible: bool
    reason: str = ""

    @property
    def p95_latency_s(self) -> float:
        return self.service_time_s + self.p95_wait_s


@dataclass(frozen=True, slots=True)
class SelfHostResult:
    inputs: SelfHostInputs
    serving: Serving
    api_per_request: Decimal
    capacity_rps: Decimal  # one replica, saturated
    rows: tuple[UtilisationRow, ...]
    break_even_utilisation: Decimal
    sizing: Sizing | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def break_even_rps(self) -> Decimal | None:
        """Requests/s at which one replica costs what the API would (None: never)."""
        if self.break_even_utilisation > 1:
            return None
        return self.break_even_utilisation * self.capacity_rps

    def to_dict(self) -> dict[str, Any]:
        sizing = self.sizing
        return {
            "api_per_request": f"{self.api_per_request:f}",
            "replica_usd_per_hour": f"{self.serving.hourly_usd:f}",
            "replica_tokens_per_s": f"{self.serving.tokens_per_s:f}",
            "capacity_rps": f"{self.capacity_rps:f}",
            "break_even_utilisation": f"{self.break_even_utilisation:f}",
            "break_even_rps": None if self.break_even_rps is None else f"{self.break_even_rps:f}",
            "rows": [
                {
                    "utilisation": f"{r.utilisation:f}",
                    "per_request": f"{r.per_request:f}",
                    "per_mtok": f"{r.per_mtok:f}",
                    "per_mtok_output": f"{r.per_mtok_output:f}",
                }
                for r in self.rows
            ],
            "sizing": None
            if sizing is None
            else {
                "requests_per_s": f"{sizing.requests_per_s:f}",
                "replicas": sizing.replicas,
                "gpus": sizing.gpus,
                "utilisation": sizing.utilisation,
                "p95_latency_s": sizing.p95_latency_s,
                "fleet_usd_per_day": f"{sizing.fleet_usd_per_day:f}",
                "api_usd_per_day": f"{sizing.api_usd_per_day:f}",
                "feasible": sizing.feasible,
                "reason": sizing.reason,
            },
        }


def self_host(inputs: SelfHostInputs, catalog: Catalog) -> SelfHostResult:
    serving = resolve_serving(inputs, catalog)
    api = inputs.api.per_request(inputs.input_tokens, inputs.output_tokens)
    capacity = serving.capacity_rps(inputs.output_tokens)
    tokens = Decimal(inputs.input_tokens + inputs.output_tokens)
    rows = []
    for u in inputs.utilisations:
        per_request = serving.hourly_usd / (SECONDS_PER_HOUR * capacity * u)
        rows.append(
            UtilisationRow(
                u,
                per_request,
                per_request / tokens * MILLION,
                per_request / inputs.output_tokens * MILLION,
            )
        )
    break_even = serving.hourly_usd / (SECONDS_PER_HOUR * capacity * api)
    sizing = None if inputs.requests_per_s is None else size_fleet(inputs, serving, api)
    return SelfHostResult(inputs, serving, api, capacity, tuple(rows), break_even, sizing)


def size_fleet(inputs: SelfHostInputs, serving: Serving, api_per_request: Decimal) -> Sizing:
    """Fewest replicas for the workload under the utilisation cap and the p95 latency target."""
    assert inputs.requests_per_s is not None
    rate = float(inputs.requests_per_s)
    capacity = float(serving.capacity_rps(inputs.output_tokens))
    slots = inputs.batch_slots
    service = slots / capacity
    api_day = inputs.requests_per_s * _SECONDS_PER_DAY * api_per_request
    target = None if inputs.latency_target_s is None else float(inputs.latency_target_s)
    feasible, reason, wait_budget = True, "", None
    if target is not None:
        wait_budget = target - service
        if wait_budget <= 0:
            feasible = False
            reason = (
                f"a request takes {fmt_hours(service)} with {slots} sequences sharing a "
                f"replica, over the {fmt_hours(target)} target: lower batch_slots"
            )
            wait_budget = None
    cap = float(inputs.max_utilisation)
    replicas = replicas_needed(
        rate, capacity, slots, max_utilisation=cap, max_p95_wait_s=wait_budget
    )
    stats = mmc(rate, capacity / slots, replicas * slots)
    fleet_day = replicas * serving.hourly_usd * HOURS_PER_DAY
    return Sizing(
        inputs.requests_per_s,
        replicas,
        replicas * serving.gpus,
        stats.utilisation,
        service,
        stats.p95_wait_s,
        fleet_day,
        api_day,
        feasible,
        reason,
    )


def explain_self_host(result: SelfHostResult) -> Explanation:
    inputs, serving = result.inputs, result.serving
    out = Explanation(
        f"API vs self-hosted: {inputs.input_tokens} in / {inputs.output_tokens} "
        "out tokens per request"
    )
    out.assume("API", inputs.api.label())
    out.assume(
        "replica",
        f"{serving.gpus} GPU(s), {fmt_usd(serving.hourly_usd)}/h, "
        f"{fmt_num(serving.tokens_per_s, 0)} output tok/s saturated",
    )
    out.assumptions.extend(serving.sources)
    api = result.api_per_request
    out.step(
        f"API per request = {inputs.input_tokens} × ${plain(inputs.api.input_rate * MILLION)}/1M"
        f" + {inputs.output_tokens} × ${plain(inputs.api.output_rate * MILLION)}/1M = "
        f"{fmt_usd(api)}"
    )
    out.step(
        f"replica capacity μ = {fmt_num(serving.tokens_per_s, 1)} ÷ {inputs.output_tokens}"
        f" = {fmt_num(result.capacity_rps, 3)} req/s"
    )
    out.step(
        f"self-hosted per request at utilisation u = {fmt_usd(serving.hourly_usd)} ÷ "
        f"(3600 × {fmt_num(result.capacity_rps, 3)} × u)"
    )
    out.step(
        f"break-even u* = {fmt_usd(serving.hourly_usd)} ÷ (3600 × "
        f"{fmt_num(result.capacity_rps, 3)} × {fmt_usd(api)}) = "
        f"{fmt_pct(result.break_even_utilisation)}"
    )
    out.table(
        "Cost across utilisation",
        ("utilisation", "per request", "per 1M tokens", "per 1M output", "vs API"),
        [
            (
                fmt_pct(r.utilisation, 0),
                fmt_usd(r.per_request),
                fmt_usd(r.per_mtok),
                fmt_usd(r.per_mtok_output),
                f"{r.per_request / api:.2f}×",
            )
            for r in result.rows
        ],
    )
    rps = result.break_even_rps
    if rps is None:
        out.verdict = (
            f"self-hosting never breaks even: even fully busy a request costs "
            f"{fmt_usd(serving.hourly_usd / (SECONDS_PER_HOUR * result.capacity_rps))}"
            f" vs {fmt_usd(api)} on the API"
        )
    else:
        out.step(
            f"break-even rate λ* = u* × μ = {fmt_num(rps, 3)} req/s "
            f"({fmt_num(rps * _SECONDS_PER_DAY, 0)} requests/day) per replica"
        )
        out.verdict = (
            f"one replica beats the API above {fmt_num(rps, 3)} req/s sustained "
            f"({fmt_pct(result.break_even_utilisation)} busy)"
        )
    if result.sizing is not None:
        _explain_sizing(out, result.sizing, inputs)
    return out


def _explain_sizing(out: Explanation, sizing: Sizing, inputs: SelfHostInputs) -> None:
    out.assume("workload", f"{sizing.requests_per_s} req/s")
    out.assume("batch slots", inputs.batch_slots, "sequences sharing a replica (M/M/c servers)")
    out.assume("max utilisation", fmt_pct(inputs.max_utilisation))
    if inputs.latency_target_s is not None:
        out.assume("p95 latency target", fmt_hours(float(inputs.latency_target_s)))
    out.step(
        f"service time S = slots ÷ μ = {inputs.batch_slots} ÷ capacity = "
        f"{fmt_hours(sizing.service_time_s)}"
    )
    out.step(
        f"replicas = {sizing.replicas} ({sizing.gpus} GPU(s)): utilisation "
        f"{fmt_pct(sizing.utilisation)}, p95 wait {fmt_hours(sizing.p95_wait_s)}, "
        f"p95 latency ≈ S + wait = {fmt_hours(sizing.p95_latency_s)}"
    )
    out.step(
        f"per day: self-hosted {sizing.replicas} × replica $/h × 24 = "
        f"{fmt_usd(sizing.fleet_usd_per_day)}; API {sizing.requests_per_s} × 86400 × "
        f"per request = {fmt_usd(sizing.api_usd_per_day)}"
    )
    if not sizing.feasible:
        out.verdict += f"; sizing: {sizing.reason}"
        return
    cheaper = sizing.fleet_usd_per_day < sizing.api_usd_per_day
    winner = "self-hosted" if cheaper else "the API"
    out.verdict += (
        f"; at {sizing.requests_per_s} req/s {winner} is cheaper: "
        f"{fmt_usd(sizing.fleet_usd_per_day)}/day on {sizing.gpus} GPU(s) vs "
        f"{fmt_usd(sizing.api_usd_per_day)}/day on the API"
    )
