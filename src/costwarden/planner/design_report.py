"""The design verdict as people read it: assumptions, the cost line, sensitivities, batch APIs."""

from __future__ import annotations

from costwarden.planner.design import DesignResult, per_million_tokens
from costwarden.planner.lengths import parse_lengths
from costwarden.planner.report import Explanation, fmt_num, fmt_pct, fmt_usd
from costwarden.planner.scenario import MILLION


def explain_design(result: DesignResult) -> Explanation:
    inputs = result.inputs
    out = Explanation(
        f"Design: summarise {fmt_num(inputs.articles_per_day)} articles/day for "
        f"{fmt_usd(inputs.budget_usd_per_day)}/day with a {inputs.model_class} model on "
        f"{inputs.price_kind.replace('_', '-')} {inputs.gpu}s, batched, truncated to "
        f"{fmt_num(inputs.truncate_tokens)} tokens"
    )
    _assumptions(out, result)
    _arithmetic(out, result)
    _tables(out, result)
    out.verdict = _verdict(result)
    return out


def _assumptions(out: Explanation, result: DesignResult) -> None:
    inputs = result.inputs
    out.assume(
        "article length",
        f"{parse_lengths(inputs.article_tokens).label}",
        f"assumed; mean {result.article_mean:,.0f} after the cut, "
        f"{fmt_pct(result.truncated_share)} of articles cut",
    )
    out.assume(
        "request",
        f"{inputs.prompt_overhead_tokens} instruction + article tokens in, "
        f"{inputs.summary_tokens} summary tokens out",
    )
    for name, value, source in result.sources:
        out.assume(name, value, source)
    out.assume("utilisation", fmt_pct(inputs.utilisation), "offline batch keeps GPUs busy")
    out.assume("fine-tuning", "not in the daily cost", "one-off; see `plan strategy`")
    batching = (
        "continuous batching (no padding)"
        if inputs.static_batch_size is None
        else f"static batches of {inputs.static_batch_size}"
    )
    out.assume("batching", batching)
    if inputs.price_kind == "spot":
        out.assume(
            "spot reclaims",
            f"{inputs.interruptions_per_hour}/GPU-h, "
            f"{inputs.restart_s:.0f} s restart + {inputs.lost_work_s:.0f} s lost work each",
        )


def _tables(out: Explanation, result: DesignResult) -> None:
    p = result.point
    out.table(
        "Sensitivities (cost per day)",
        ("input", "low", "cost", "high", "cost", "break-even at budget"),
        [
            (
                s.name,
                s.low_label,
                fmt_usd(s.low_cost),
                s.high_label,
                fmt_usd(s.high_cost),
                s.break_even,
            )
            for s in result.sensitivities
        ],
    )
    out.table(
        "Batch APIs for the same work",
        ("API", "price per 1M in/out", "per day", "vs GPUs"),
        [
            (
                a.price.name,
                f"${a.price.input_rate * MILLION:.4g} / ${a.price.output_rate * MILLION:.4g}",
                fmt_usd(a.cost_per_day),
                f"{a.cost_per_day / p.cost_per_day:.2f}×",
            )
            for a in sorted(result.apis, key=lambda a: a.cost_per_day)
        ],
    )


def _arithmetic(out: Explanation, result: DesignResult) -> None:
    inputs, p = result.inputs, result.point
    out.step(
        f"prompt = {inputs.prompt_overhead_tokens} + {result.article_mean:,.1f} = "
        f"{p.prompt_tokens:,.1f} tokens; summary = {p.summary_tokens} tokens"
    )
    out.step(
        f"GPU capacity K = throughput × (summary + w·prompt) ÷ summary = "
        f"{fmt_num(p.capacity, 1)} token-steps/s (w = {p.weight:.3f})"
    )
    out.step(
        f"GPU-seconds per article = ({p.summary_tokens} + {p.weight:.3f} × "
        f"{p.prompt_tokens:,.1f}) ÷ {fmt_num(p.capacity, 1)} = "
        f"{p.gpu_seconds_per_article:.4f} s"
    )
    out.step(
        f"GPU-hours/day = {fmt_num(p.articles)} × {p.gpu_seconds_per_article:.4f} ÷ 3600 ÷ "
        f"{p.utilisation} × {p.spot_overhead:.4f} (spot) × {p.padding:.3f} (padding) = "
        f"{p.gpu_hours:,.2f} → {p.gpus} GPUs around the clock"
    )
    out.step(
        f"cost/day = {p.gpu_hours:,.2f} GPU-h × {fmt_usd(p.gpu_hourly)} = "
        f"{fmt_usd(p.cost_per_day)} ({fmt_usd(p.cost_per_day / p.articles * 1000)} per 1k "
        f"articles, {fmt_usd(per_million_tokens(result))} per 1M tokens)"
    )
    out.step(
        f"batch API/day = {fmt_num(p.articles)} × ({p.prompt_tokens:,.1f} × in + "
        f"{p.summary_tokens} × out) at the batch price"
    )


def _verdict(result: DesignResult) -> str:
    inputs, p = result.inputs, result.point
    share = p.cost_per_day / inputs.budget_usd_per_day
    head = (
        f"{'fits' if result.fits_budget else 'misses'} the budget: {fmt_usd(p.cost_per_day)}"
        f"/day on {p.gpus} {inputs.gpu}s ({share * 100:.0f} % of "
        f"{fmt_usd(inputs.budget_usd_per_day)})"
    )
    tight = [
        s for s in result.sensitivities if max(s.low_cost, s.high_cost) > inputs.budget_usd_per_day
    ]
    risk = (
        (
            "; over budget if "
            + ", ".join(
                f"{s.name} goes to {s.high_label if s.high_cost > s.low_cost else s.low_label}"
                for s in tight
            )
        )
        if tight
        else "; within budget across every swing tested"
    )
    cheaper = [a for a in result.apis if a.cost_per_day < p.cost_per_day]
    best = min(result.apis, key=lambda a: a.cost_per_day, default=None)
    if best is None:
        api = ""
    elif cheaper:
        api = f"; but {best.price.name} does it for {fmt_usd(best.cost_per_day)}/day with no fleet"
    else:
        api = f"; the cheapest batch API ({best.price.name}) costs {fmt_usd(best.cost_per_day)}/day"
    measure = ""
    if result.throughput_estimated:
        measure = (
            f"; the {inputs.gpu} throughput is an estimate: confirm it with "
            "`costwarden plan measure` before buying"
        )
    return head + risk + api + measure
