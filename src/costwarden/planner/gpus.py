"""The GPU catalog: $/GPU-hour (on-demand, spot) and serving throughput, each with its source.

The bundled catalog is ``planner/data/gpus.yaml``. Overrides (a ``--catalog`` file, or a
scenario's ``gpus:`` section, same shape) are merged per GPU: scalar fields replace, and price
or throughput entries come first, replacing a bundled entry with the same key (provider + kind;
model class + input/output lengths), so an override is always the one chosen.

Throughput is the output tokens/s of one replica at saturation for given input/output lengths.
A workload with other lengths is priced from the nearest figure (in log-length distance) with a
linear cost model: a request costs ``output + w·input`` token-steps, where ``w`` (how much a
prompt token costs relative to a generated one) is fitted from two figures of that GPU and model
class with the same output length, or taken from the caller.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import Field

from costwarden.planner.report import Explanation, fmt_num, fmt_pct, fmt_usd
from costwarden.planner.scenario import MILLION, SECONDS_PER_HOUR, PlanModel, merged

PriceKind = Literal["on_demand", "spot"]
DEFAULT_INPUT_WEIGHT = Decimal("0.3")


class PriceEntry(PlanModel):
    provider: str
    kind: PriceKind
    usd_per_hour: Decimal = Field(description="USD per GPU-hour")
    instance: str = ""
    region: str = ""
    as_of: str
    source: str
    estimate: bool = False
    note: str = ""

    def cite(self) -> str:
        mark = ", estimate" if self.estimate else ""
        return f"{self.source}, as of {self.as_of}{mark}"


class ThroughputFigure(PlanModel):
    model_class: str
    gpus: int = 1
    input_tokens: int
    output_tokens: int
    tokens_per_s: Decimal = Field(description="output tokens/s of one replica at saturation")
    precision: str = ""
    engine: str = ""
    as_of: str
    source: str
    estimate: bool = False
    note: str = ""

    @property
    def requests_per_s(self) -> Decimal:
        return self.tokens_per_s / self.output_tokens

    def cite(self) -> str:
        mark = f", estimate: {self.note}" if self.estimate else ""
        return f"{self.source}, as of {self.as_of}{mark}"


class GpuType(PlanModel):
    name: str
    memory_gb: int
    memory_bandwidth_gbs: int
    spec_source: str = ""
    prices: tuple[PriceEntry, ...] = ()
    throughput: tuple[ThroughputFigure, ...] = ()


@dataclass(frozen=True, slots=True)
class Catalog:
    gpus: Mapping[str, GpuType]

    def gpu(self, name: str) -> GpuType:
        for key, gpu in self.gpus.items():
            if key.lower() == name.lower():
                return gpu
        raise ValueError(f"no GPU {name!r} in the catalog; known: {', '.join(self.gpus)}")

    def price(self, name: str, kind: PriceKind, provider: str | None = None) -> PriceEntry:
        for entry in self.gpu(name).prices:
            if entry.kind == kind and (provider is None or entry.provider == provider):
                return entry
        raise ValueError(f"the catalog has no {kind} price for {name} ({provider or 'any'})")

    def figures(self, name: str, model_class: str) -> list[ThroughputFigure]:
        wanted = model_class.lower()
        return [f for f in self.gpu(name).throughput if f.model_class.lower() == wanted]

    def figure(
        self, name: str, model_class: str, input_tokens: int, output_tokens: int
    ) -> ThroughputFigure:
        """The figure measured nearest to these lengths (log distance; first wins ties)."""
        figures = self.figures(name, model_class)
        if not figures:
            raise ValueError(
                f"the catalog has no {model_class} throughput for {name}: measure it with "
                "`costwarden plan measure` and add it under gpus:"
            )
        return min(figures, key=lambda f: _distance(f, input_tokens, output_tokens))

    def input_weight(self, name: str, model_class: str) -> tuple[Decimal, str]:
        """``w`` fitted from this GPU's figures, else the default; with a line saying which."""
        fitted = fit_input_weight(self.figures(name, model_class))
        if fitted is None:
            return DEFAULT_INPUT_WEIGHT, "default (no two figures with the same output length)"
        return fitted, f"fitted from the {name} {model_class} figures"


def _distance(figure: ThroughputFigure, input_tokens: int, output_tokens: int) -> float:
    return abs(math.log(max(input_tokens, 1) / figure.input_tokens)) + abs(
        math.log(max(output_tokens, 1) / figure.output_tokens)
    )


def fit_input_weight(figures: list[ThroughputFigure]) -> Decimal | None:
    """Solve r1/r2 = (osl + w·isl2)/(osl + w·isl1) for the same-osl pair farthest apart in isl:
    w = osl·(q − 1) / (isl2 − q·isl1), q = r1/r2. None when no such pair gives a positive w."""
    best: tuple[int, Decimal] | None = None
    for low in figures:
        for high in figures:
            same = low.output_tokens == high.output_tokens and low.gpus == high.gpus
            if not same or high.input_tokens <= low.input_tokens:
                continue
            q = low.requests_per_s / high.requests_per_s
            denominator = high.input_tokens - q * low.input_tokens
            if denominator <= 0:
                continue
            weight = low.output_tokens * (q - 1) / denominator
            gap = high.input_tokens - low.input_tokens
            if weight > 0 and (best is None or gap > best[0]):
                best = (gap, weight)
    return None if best is None else best[1]


def tokens_per_s_at(
    figure: ThroughputFigure, input_tokens: int, output_tokens: int, weight: Decimal
) -> Decimal:
    """Output tokens/s of a replica serving requests of these lengths, from ``figure``."""
    figure_cost = figure.output_tokens + weight * figure.input_tokens
    request_cost = output_tokens + weight * input_tokens
    return figure.requests_per_s * figure_cost / request_cost * output_tokens


def usd_per_mtok(hourly_usd: Decimal, tokens_per_s: Decimal, utilisation: Decimal) -> Decimal:
    """USD per 1M output tokens of a replica costing ``hourly_usd`` busy ``utilisation``."""
    return hourly_usd / (tokens_per_s * SECONDS_PER_HOUR * utilisation) * MILLION


def _bundled() -> dict[str, Any]:
    text = resources.files("costwarden.planner").joinpath("data/gpus.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    return dict(data["gpus"])


def _merge_entries(
    base: list[dict[str, Any]], extra: list[dict[str, Any]], keys: tuple[str, ...]
) -> list[dict[str, Any]]:
    def key(entry: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(str(entry.get(k, "")).lower() for k in keys)

    taken = {key(e) for e in extra}
    return [*extra, *[e for e in base if key(e) not in taken]]


def merge_catalog(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Raw catalog dicts merged per GPU name (see the module docstring)."""
    out = {name: dict(spec) for name, spec in base.items()}
    for name, spec in overrides.items():
        current = out.get(name, {})
        combined = merged(current, {k: v for k, v in spec.items() if k not in _LISTS})
        for field, keys in _LISTS.items():
            combined[field] = _merge_entries(
                list(current.get(field, [])), list(spec.get(field, [])), keys
            )
        out[name] = combined
    return out


_LISTS: dict[str, tuple[str, ...]] = {
    "prices": ("provider", "kind"),
    "throughput": ("model_class", "input_tokens", "output_tokens"),
}


def load_catalog(*overrides: Mapping[str, Any]) -> Catalog:
    """The bundled catalog with each override layer merged on top, in order."""
    raw = _bundled()
    for layer in overrides:
        raw = merge_catalog(raw, layer.get("gpus", layer))
    gpus = {name: GpuType.model_validate({"name": name, **spec}) for name, spec in raw.items()}
    return Catalog(gpus)


class GpusInputs(PlanModel):
    """``plan gpus``: what each catalog GPU costs per 1M output tokens for one workload."""

    model_class: str = Field("7b", description="model size class: 7b, 13b, 70b")
    input_tokens: int = Field(1000, gt=0, description="prompt tokens per request")
    output_tokens: int = Field(200, gt=0, description="generated tokens per request")
    utilisation: Decimal = Field(Decimal("0.8"), gt=0, le=1, description="busy share of paid time")
    input_token_weight: Decimal | None = Field(
        None, description="prompt-token cost relative to an output token (default: fitted)"
    )


@dataclass(frozen=True, slots=True)
class GpuRow:
    gpu: str
    gpus: int
    figure: ThroughputFigure
    weight: Decimal
    tokens_per_s: Decimal
    on_demand: PriceEntry | None
    spot: PriceEntry | None
    on_demand_per_mtok: Decimal | None
    spot_per_mtok: Decimal | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpu": self.gpu,
            "gpus_per_replica": self.gpus,
            "figure": self.figure.model_dump(mode="json"),
            "input_token_weight": str(self.weight),
            "tokens_per_s": str(self.tokens_per_s),
            "on_demand_usd_per_gpu_hour": _price_text(self.on_demand),
            "spot_usd_per_gpu_hour": _price_text(self.spot),
            "on_demand_usd_per_mtok": _text(self.on_demand_per_mtok),
            "spot_usd_per_mtok": _text(self.spot_per_mtok),
        }


@dataclass(frozen=True, slots=True)
class GpusResult:
    inputs: GpusInputs
    rows: tuple[GpuRow, ...]

    def cheapest(self, kind: PriceKind) -> GpuRow | None:
        def cost(row: GpuRow) -> Decimal | None:
            return row.on_demand_per_mtok if kind == "on_demand" else row.spot_per_mtok

        priced = [row for row in self.rows if cost(row) is not None]
        return min(priced, key=lambda r: cost(r) or Decimal(0), default=None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs.model_dump(mode="json"),
            "rows": [r.to_dict() for r in self.rows],
        }


def _text(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:f}"


def _price_text(entry: PriceEntry | None) -> str | None:
    return None if entry is None else f"{entry.usd_per_hour:f}"


def _first(gpu: GpuType, kind: PriceKind) -> PriceEntry | None:
    return next((p for p in gpu.prices if p.kind == kind), None)


def compare_gpus(catalog: Catalog, inputs: GpusInputs) -> GpusResult:
    rows: list[GpuRow] = []
    for name, gpu in catalog.gpus.items():
        if not catalog.figures(name, inputs.model_class):
            continue
        figure = catalog.figure(name, inputs.model_class, inputs.input_tokens, inputs.output_tokens)
        weight = inputs.input_token_weight or catalog.input_weight(name, inputs.model_class)[0]
        rate = tokens_per_s_at(figure, inputs.input_tokens, inputs.output_tokens, weight)
        on_demand, spot = _first(gpu, "on_demand"), _first(gpu, "spot")

        def per_mtok(
            entry: PriceEntry | None, rate: Decimal = rate, n: int = figure.gpus
        ) -> Decimal | None:
            if entry is None:
                return None
            return usd_per_mtok(entry.usd_per_hour * n, rate, inputs.utilisation)

        rows.append(
            GpuRow(
                name,
                figure.gpus,
                figure,
                weight,
                rate,
                on_demand,
                spot,
                per_mtok(on_demand),
                per_mtok(spot),
            )
        )
    return GpusResult(inputs, tuple(rows))


def explain_gpus(result: GpusResult) -> Explanation:
    inputs = result.inputs
    out = Explanation(
        f"GPU catalog: {inputs.model_class} model, {inputs.input_tokens} in / "
        f"{inputs.output_tokens} out tokens per request"
    )
    out.assume("utilisation", fmt_pct(inputs.utilisation), "busy share of the paid GPU-hours")
    out.assume(
        "throughput model",
        "output + w·input token-steps per request",
        "from the nearest measured figure; w fitted per GPU unless given",
    )
    out.step("$/1M output tokens = $/GPU-h × GPUs ÷ (tokens/s × 3600 × utilisation) × 1e6")
    rows = []
    for row in result.rows:
        figure = row.figure
        rows.append(
            (
                row.gpu,
                row.gpus,
                f"{figure.input_tokens}/{figure.output_tokens}",
                f"{row.weight:.2f}",
                fmt_num(row.tokens_per_s, 0),
                _money_or_dash(row.on_demand.usd_per_hour if row.on_demand else None),
                _money_or_dash(row.on_demand_per_mtok),
                _money_or_dash(row.spot.usd_per_hour if row.spot else None),
                _money_or_dash(row.spot_per_mtok),
            )
        )
        if row.on_demand_per_mtok is not None and row.on_demand is not None:
            out.step(
                f"{row.gpu}: {fmt_usd(row.on_demand.usd_per_hour)} × {row.gpus} ÷ "
                f"({fmt_num(row.tokens_per_s, 0)} × 3600 × {inputs.utilisation}) × 1e6 = "
                f"{fmt_usd(row.on_demand_per_mtok)} per 1M output tokens on demand"
            )
    out.table(
        "Per replica",
        (
            "GPU",
            "GPUs",
            "figure in/out",
            "w",
            "tokens/s",
            "$/GPU-h",
            "$/1M out",
            "spot $/GPU-h",
            "spot $/1M out",
        ),
        rows,
    )
    out.table("Sources", ("GPU", "what", "source"), _sources(result))
    best, best_spot = result.cheapest("on_demand"), result.cheapest("spot")
    if best is None:
        out.verdict = f"no GPU in the catalog has a priced {inputs.model_class} figure"
        return out
    spot_text = ""
    if best_spot is not None and best_spot.spot_per_mtok is not None:
        spot_text = f"; on spot {best_spot.gpu} at {fmt_usd(best_spot.spot_per_mtok)}"
    out.verdict = (
        f"cheapest on demand: {best.gpu} at {fmt_usd(best.on_demand_per_mtok or Decimal(0))} "
        f"per 1M output tokens{spot_text} (figures marked estimate: measure before buying)"
    )
    return out


def _money_or_dash(value: Decimal | None) -> str:
    return "-" if value is None else fmt_usd(value)


def _sources(result: GpusResult) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    for row in result.rows:
        figure = row.figure
        rows.append((row.gpu, f"{figure.tokens_per_s} tok/s {figure.precision}", figure.cite()))
        rows.extend(
            (row.gpu, f"{entry.kind} ${entry.usd_per_hour}/h {entry.provider}", entry.cite())
            for entry in (row.on_demand, row.spot)
            if entry is not None
        )
    return rows
