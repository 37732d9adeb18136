"""The budgets page: counters, burn-down, forecast to the period's end, projected cap-hit date."""

from __future__ import annotations

from collections.abc import Sequence

from costwarden.dashboard import layout
from costwarden.dashboard.budget_views import BudgetView, ScopeForecast, budget_views
from costwarden.dashboard.charts import burn_down
from costwarden.dashboard.context import PageContext
from costwarden.dashboard.markup import (
    Column,
    attr,
    esc,
    exact,
    link,
    money,
    money_cell,
    percent,
    table,
    table_head,
    url,
)
from costwarden.policy.budget_status import BudgetStatus

_CHARTS_PER_BUDGET = 3  # burn-down charts drawn for a per-value budget (the top projections)
_STATUS_TEXT = {"reached": "cap reached", "not_this_period": "not this month"}


def _scope_text(scope: dict[str, str | None]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(scope.items())) or "global"


def _counter_line(status: BudgetStatus) -> str:
    if status.spent_usd is None or status.reserved_usd is None:
        needs = ", ".join(status.needs)
        return (
            f'<p class="muted">One budget per {esc(needs)} value; the counters are per value.</p>'
        )
    remaining = status.remaining_usd
    resets = status.resets_at.strftime("%Y-%m-%d %H:%M %Z") if status.resets_at else None
    return (
        f'<p class="counter" data-spent={attr(exact(status.spent_usd))} '
        f"data-reserved={attr(exact(status.reserved_usd))}>Counter for {esc(status.window or '')}"
        f": spent {esc(money(status.spent_usd))}, reserved in flight "
        f"{esc(money(status.reserved_usd))}, remaining "
        f"{esc(money(remaining) if remaining is not None else '-')}"
        f"{', resets ' + esc(resets) if resets else ''}"
        "</p>"
    )


def _cap_cell(forecast: ScopeForecast) -> str:
    cap = forecast.cap
    text = cap.hit_on.isoformat() if cap.hit_on else _STATUS_TEXT[cap.status]
    return (
        f"<td class={attr('status-' + cap.status)} data-status={attr(cap.status)} "
        f"data-hit-on={attr(cap.hit_on.isoformat() if cap.hit_on else '')}>{esc(text)}</td>"
    )


def _forecast_row(forecast: ScopeForecast) -> str:
    f = forecast.cap.forecast
    return (
        f"<tr data-scope={attr(_scope_text(f.group))}><td>{esc(_scope_text(f.group))}</td>"
        f"{money_cell(f.spent, 'spent')}{money_cell(forecast.cap.limit_usd, 'cap')}"
        f'<td class="num">{esc(percent(f.spent, forecast.cap.limit_usd))}</td>'
        f"{money_cell(f.daily_rate, 'rate')}{money_cell(f.projected, 'projected')}"
        f'<td class="num" data-low={attr(exact(f.low))} data-high={attr(exact(f.high))}>'
        f"{esc(money(f.low))} – {esc(money(f.high))}</td>{_cap_cell(forecast)}</tr>"
    )


def _forecast_table(forecasts: Sequence[ScopeForecast], table_id: str) -> str:
    names = ("scope", "spent this month", "cap", "used", "daily rate", "projected month end",
             "~90 % interval", "cap hit on")
    columns = tuple(Column(n, n, numeric=0 < i < 7) for i, n in enumerate(names))
    return table(table_head(columns, {}, ""), (_forecast_row(f) for f in forecasts),
                 table_id=table_id, empty="No spend in this budget's scope yet.")


def _budget_section(index: int, view: BudgetView, ctx: PageContext, show_all: bool) -> str:
    rule = view.budget.rule
    scope: dict[str, str | None] = {str(k): v for k, v in rule.scope.items()}
    head = (
        f'<section class="budget" id={attr(f"budget-{index}")} data-budget={attr(rule.label())} '
        f"data-period={attr(rule.period)} data-limit={attr(exact(rule.limit_usd))}>"
        f'<h2>{esc(rule.label())} <span class="muted">{esc(_scope_text(scope))} · '
        f"{esc(rule.period)} cap {esc(money(rule.limit_usd))} · {esc(view.budget.source)}"
        "</span></h2>"
        + _counter_line(view.status)
    )
    if rule.period != "month":
        return head + '<p class="muted">Forecasts cover monthly budgets only.</p></section>'
    shown = view.forecasts if show_all else view.forecasts[: ctx.config.top_n]
    charts = "".join(
        f"<h3>{esc(_scope_text(f.cap.forecast.group))}</h3>"
        + burn_down(f.burn, f"burn-{index}-{k}")
        for k, f in enumerate(view.forecasts[:_CHARTS_PER_BUDGET])
    )
    more = ""
    if len(shown) < len(view.forecasts):
        more = "<p>" + link(url(f"{layout.BASE}/budgets", {"top": "all"}),
                            f"Show all {len(view.forecasts):,} scopes") + "</p>"
    return head + charts + _forecast_table(shown, f"forecast-{index}") + more + "</section>"


async def budgets_page(ctx: PageContext) -> str:
    views = await budget_views(ctx.store, ctx.policy, ctx.now, ctx.tz)
    show_all = ctx.params.get("top") == "all"
    sections = "".join(_budget_section(i, v, ctx, show_all) for i, v in enumerate(views))
    intro = (
        f'<p class="muted">Periods start at midnight {esc(str(ctx.tz))}. Forecast: spend so far '
        "plus the trimmed mean of the last 7 complete days for each remaining day (~90 % "
        "interval); the cap-hit date is when that line crosses the cap.</p>"
    )
    body = intro + (sections or '<p class="empty" id="no-budgets">No budgets configured.</p>')
    return layout.page("Budgets", body, active="budgets", as_of=ctx.now)
