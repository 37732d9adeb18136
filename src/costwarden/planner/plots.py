"""PNG charts for ``costwarden plan … --plot FILE`` (matplotlib, Agg: no display needed).

matplotlib is imported inside ``_figure`` because it is slow to import and only ``--plot``
needs it. Each function draws one result type and returns the path written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from costwarden.planner.autoscale import AutoscaleResult
from costwarden.planner.design import DesignResult
from costwarden.planner.gpus import GpusResult
from costwarden.planner.measure import MeasureResult
from costwarden.planner.padding import PaddingResult
from costwarden.planner.selfhost import SelfHostResult
from costwarden.planner.spot import FleetResult, JobResult
from costwarden.planner.strategy import StrategyResult


def _figure(title: str) -> tuple[Any, Any, Any]:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, axes = plt.subplots(figsize=(7.5, 4.6), dpi=120)
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    return plt, figure, axes


def _save(plt: Any, figure: Any, path: Path) -> Path:
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def plot_selfhost(result: SelfHostResult, path: Path) -> Path:
    plt, figure, axes = _figure("Cost per 1M tokens: self-hosted across utilisation vs API")
    xs = [float(r.utilisation) * 100 for r in result.rows]
    axes.plot(xs, [float(r.per_mtok) for r in result.rows], "o-", label="self-hosted")
    tokens = result.inputs.input_tokens + result.inputs.output_tokens
    api = float(result.api_per_request) / tokens * 1e6
    axes.axhline(api, color="tab:red", label=f"API ({result.inputs.api.name})")
    if result.break_even_utilisation <= 1:
        axes.axvline(
            float(result.break_even_utilisation) * 100,
            color="grey",
            linestyle=":",
            label="break-even",
        )
    axes.set_xlabel("utilisation (%)")
    axes.set_ylabel("USD per 1M tokens (in + out)")
    axes.set_yscale("log")
    axes.legend(fontsize=8)
    return _save(plt, figure, path)


def plot_gpus(result: GpusResult, path: Path) -> Path:
    plt, figure, axes = _figure(f"USD per 1M output tokens, {result.inputs.model_class} model")
    names = [r.gpu for r in result.rows]
    on_demand = [float(r.on_demand_per_mtok or 0) for r in result.rows]
    spot = [float(r.spot_per_mtok or 0) for r in result.rows]
    positions = range(len(names))
    axes.bar([p - 0.2 for p in positions], on_demand, width=0.4, label="on demand")
    axes.bar([p + 0.2 for p in positions], spot, width=0.4, label="spot")
    axes.set_xticks(list(positions), names, fontsize=8)
    axes.set_ylabel("USD per 1M output tokens")
    axes.legend(fontsize=8)
    return _save(plt, figure, path)


def plot_padding(result: PaddingResult, path: Path) -> Path:
    plt, figure, axes = _figure("Compute wasted by static batching (padding)")
    axes.plot(
        [r.batch_size for r in result.rows],
        [r.waste * 100 for r in result.rows],
        "o-",
        label="static batching",
    )
    axes.axhline(result.continuous_waste * 100, color="tab:green", label="continuous (simulated)")
    axes.set_xscale("log", base=2)
    axes.set_xlabel("batch size")
    axes.set_ylabel("wasted compute (%)")
    axes.legend(fontsize=8)
    return _save(plt, figure, path)


def plot_spot(result: JobResult | FleetResult, path: Path) -> Path:
    plt, figure, axes = _figure("Spot vs on-demand")
    if isinstance(result, JobResult):
        labels = ["on demand", "spot mean", "spot p95"]
        hours = [result.on_demand_hours, result.mean_hours, result.p95_hours]
        axes.bar(labels, hours, color=["tab:blue", "tab:orange", "tab:red"])
        axes.set_ylabel("completion time (h)")
    else:
        labels = ["on demand", "spot"]
        costs = [float(result.on_demand_usd_per_hour), float(result.spot_usd_per_hour)]
        axes.bar(labels, costs, color=["tab:blue", "tab:orange"])
        axes.set_ylabel("USD per hour for the same capacity")
    return _save(plt, figure, path)


def plot_autoscale(result: AutoscaleResult, path: Path) -> Path:
    plt, figure, axes = _figure("Replicas per hour by policy, and traffic")
    hours = list(range(len(result.traffic)))
    for policy in result.policies:
        axes.step(hours, policy.replicas, where="post", label=f"{policy.name} ({policy.cost} $)")
    axes.set_xlabel("hour")
    axes.set_ylabel("billed replicas")
    traffic = axes.twinx()
    traffic.plot(hours, result.traffic, color="grey", linestyle=":", label="req/s")
    traffic.set_ylabel("requests/s")
    axes.legend(fontsize=8, loc="upper left")
    return _save(plt, figure, path)


def plot_strategy(result: StrategyResult, path: Path) -> Path:
    plt, figure, axes = _figure("Cumulative cost: RAG vs long context vs fine-tuning")
    days = list(range(result.inputs.horizon_days + 1))
    for strategy in result.strategies:
        axes.plot(days, [float(v) for v in result.curve(strategy.name)], label=strategy.name)
    for crossing in result.crossovers:
        if crossing.day is not None:
            axes.axvline(crossing.day, color="grey", linestyle=":", linewidth=0.8)
    axes.set_xlabel("day")
    axes.set_ylabel("USD (cumulative)")
    axes.set_yscale("symlog")
    axes.legend(fontsize=8)
    return _save(plt, figure, path)


def plot_design(result: DesignResult, path: Path) -> Path:
    plt, figure, axes = _figure("Design sensitivities: cost per day (budget in red)")
    base = float(result.point.cost_per_day)
    for row, item in enumerate(result.sensitivities):
        low, high = float(item.low_cost), float(item.high_cost)
        axes.barh(row, low - base, left=base, color="tab:green")
        axes.barh(row, high - base, left=base, color="tab:orange")
        axes.text(
            max(low, high), row, f" {item.high_label} / {item.low_label}", va="center", fontsize=7
        )
    axes.set_yticks(range(len(result.sensitivities)), [s.name for s in result.sensitivities])
    axes.axvline(base, color="black", linewidth=0.8)
    axes.axvline(float(result.inputs.budget_usd_per_day), color="tab:red")
    for api in result.apis:
        axes.axvline(float(api.cost_per_day), color="grey", linestyle=":", linewidth=0.8)
    axes.set_xlabel("USD per day (dotted: batch APIs)")
    return _save(plt, figure, path)


def plot_measure(result: MeasureResult, path: Path) -> Path:
    plt, figure, axes = _figure(f"{result.options.model}: throughput and TTFT by concurrency")
    levels = [lv.concurrency for lv in result.levels]
    axes.plot(levels, [lv.tokens_per_s for lv in result.levels], "o-", label="output tokens/s")
    axes.set_xlabel("concurrency")
    axes.set_ylabel("output tokens/s")
    ttft = axes.twinx()
    ttft.plot(levels, [lv.ttft_p50_s * 1000 for lv in result.levels], "s--", color="tab:red")
    ttft.set_ylabel("TTFT p50 (ms)")
    return _save(plt, figure, path)
