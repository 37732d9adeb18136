"""The overview (totals, spend over time, savings, recent events) and the events page."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from costwarden.dashboard import layout, params
from costwarden.dashboard.charts import legend, stacked_bars
from costwarden.dashboard.context import PageContext
from costwarden.dashboard.markup import (
    Column,
    attr,
    count,
    esc,
    exact,
    label,
    link,
    money,
    money_cell,
    percent,
    raw_label,
    table,
    table_head,
    url,
)
from costwarden.dashboard.queries import Totals, recent_events, spend_over_time
from costwarden.ledger.store import StoredAlert

_RECENT_EVENTS = 10
_EVENT_LIMIT = 500
# Event kinds by prefix (``list_alerts`` matches "anomaly" to "anomaly.spend" and so on).
EVENT_KINDS = ("anomaly", "price", "pin", "budget", "breaker")


def card(name: str, key: str, value_html: str, data: str = "") -> str:
    return (
        f'<div class="card"><div class="k">{esc(name)}</div>'
        f"<div class=\"v\" id={attr(key)}{data}>{value_html}</div></div>"
    )


def money_card(name: str, key: str, amount: Decimal) -> str:
    return card(name, key, esc(money(amount)), f" data-usd={attr(exact(amount))}")


def totals_cards(totals: Totals) -> str:
    share = totals.saved_share
    return (
        '<div class="cards">'
        + money_card("Spend", "total-cost", totals.cost)
        + card("Requests", "total-requests", esc(count(totals.requests)),
               f" data-count={attr(totals.requests)}")
        + card("Input tokens", "total-input", esc(count(totals.input_tokens)))
        + card("Output tokens", "total-output", esc(count(totals.output_tokens)))
        + card("Requests without a known cost", "total-unknown",
               esc(count(totals.unknown_cost_requests)),
               f" data-count={attr(totals.unknown_cost_requests)}")
        + money_card("Saved by savings stages", "total-saved", totals.saved)
        + card("Saved ÷ (spend + saved)", "saved-share",
               esc("-" if share is None else percent(totals.saved, totals.cost + totals.saved)))
        + "</div>"
    )


def scope_href(dimension: str, value: str, ctx: PageContext) -> str:
    return url(f"{layout.BASE}/scope", {"dim": dimension, "value": value,
                                        "range": ctx.params.get("range")})


def value_cell(dimension: str, value: str | None, ctx: PageContext) -> str:
    """A dimension value linking to its drill-down (an unset value has none to link to)."""
    if value is None:
        return f"<td>{label(None)}</td>"
    return f"<td>{link(scope_href(dimension, value, ctx), value)}</td>"


def _by_value_table(rows: Sequence[tuple[str | None, Totals]], dimension: str,
                    ctx: PageContext) -> str:
    columns = (Column("value", dimension, numeric=False), Column("requests", "requests"),
               Column("cost", "spend"), Column("saved", "saved"))
    body = (
        f"<tr data-value={attr(raw_label(value))}>{value_cell(dimension, value, ctx)}"
        f'<td class="num">{count(t.requests)}</td>{money_cell(t.cost)}'
        f"{money_cell(t.saved, 'saved')}</tr>"
        for value, t in rows
    )
    return table(table_head(columns, {}, ""), body, table_id=f"by-{dimension}")


def events_table(alerts: Sequence[StoredAlert], table_id: str) -> str:
    columns = (Column("at", "time (UTC)", False), Column("severity", "severity", False),
               Column("kind", "kind", False), Column("title", "what", False),
               Column("scope", "scope", False))
    body = (
        f"<tr class={attr('sev-' + a.severity)} data-kind={attr(a.kind)}>"
        f"<td>{esc(a.at.strftime('%Y-%m-%d %H:%M'))}</td><td>{esc(a.severity)}</td>"
        f"<td>{esc(a.kind)}</td><td title={attr(a.text)}>{esc(a.title)}</td>"
        f"<td>{esc(a.scope)}</td></tr>"
        for a in alerts
    )
    return table(table_head(columns, {}, ""), body, table_id=table_id,
                 empty="No events in this range.")


async def overview(ctx: PageContext) -> str:
    window = params.window(ctx.params, ctx.now)
    stack = params.stack(ctx.params)
    data = await spend_over_time(ctx.store, window, stack, {}, ctx.config.stack_series)
    alerts = await recent_events(ctx.store, window.since, window.until, _RECENT_EVENTS)
    body = (
        layout.controls(layout.BASE, ctx.params, window, stack=stack)
        + totals_cards(data.totals)
        + f"<h2>Spend per {esc(window.grain)} by {esc(stack)}</h2>"
        + stacked_bars(data) + legend(data)
        + f"<h2>Spend and savings by {esc(stack)}</h2>"
        + _by_value_table(data.by_value, stack, ctx)
        + "<h2>Recent anomalies, price and version events</h2>"
        + events_table(alerts, "recent-events")
        + f"<p>{link(url(layout.BASE + '/events', {'range': window.range_name}), 'All events')}</p>"
    )
    return layout.page("Overview", body, active="overview", as_of=ctx.now)


async def events(ctx: PageContext) -> str:
    window = params.window(ctx.params, ctx.now)
    kind = ctx.params.get("kind")
    kinds = [kind] if kind in EVENT_KINDS else None
    alerts = await recent_events(ctx.store, window.since, window.until, _EVENT_LIMIT, kinds)
    filters = " ".join(
        link(url(f"{layout.BASE}/events", {**ctx.params, "kind": k}), k) for k in EVENT_KINDS
    )
    body = (
        layout.controls(f"{layout.BASE}/events", ctx.params, window)
        + f'<div class="controls">{filters} '
        + link(url(f"{layout.BASE}/events", {"range": window.range_name}), "all kinds")
        + "</div>"
        + events_table(alerts, "events")
    )
    return layout.page("Events", body, active="events", as_of=ctx.now)
