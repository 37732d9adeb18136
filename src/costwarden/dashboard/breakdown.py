"""Cost per user / team / feature / environment / model, one scope's drill-down, one request."""

from __future__ import annotations

from collections.abc import Sequence

from costwarden.dashboard import layout, params
from costwarden.dashboard.charts import legend, stacked_bars
from costwarden.dashboard.context import PageContext
from costwarden.dashboard.markup import (
    Column,
    attr,
    count,
    definition_list,
    esc,
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
from costwarden.dashboard.overview import totals_cards, value_cell
from costwarden.dashboard.queries import (
    BREAKDOWN_COLUMNS,
    BreakdownRow,
    breakdown,
    latest_requests,
    sort_rows,
    spend_over_time,
    total,
)
from costwarden.records import UsageRecord

_TITLES = {"user": "Users", "team": "Teams", "feature": "Features", "env": "Environments",
           "model": "Models", "key": "Keys", "provider": "Providers"}


def _columns(dimension: str) -> tuple[Column, ...]:
    return (
        Column("value", dimension, numeric=False),
        Column("requests", "requests"),
        Column("input_tokens", "input tokens"),
        Column("output_tokens", "output tokens"),
        Column("cost", "spend"),
        Column("share", "share of spend"),
        Column("saved", "saved"),
    )


def _breakdown_row(row: BreakdownRow, dimension: str, whole: BreakdownRow, ctx: PageContext
                   ) -> str:
    t = row.totals
    return (
        f"<tr data-value={attr(raw_label(row.value))}>{value_cell(dimension, row.value, ctx)}"
        f'<td class="num" data-count={attr(t.requests)}>{count(t.requests)}</td>'
        f'<td class="num">{count(t.input_tokens)}</td>'
        f'<td class="num">{count(t.output_tokens)}</td>'
        f"{money_cell(t.cost)}"
        f'<td class="num">{esc(percent(t.cost, whole.totals.cost))}</td>'
        f"{money_cell(t.saved, 'saved')}</tr>"
    )


async def breakdown_page(ctx: PageContext, dimension: str) -> str:
    window = params.window(ctx.params, ctx.now)
    view = params.table_view(ctx.params, BREAKDOWN_COLUMNS)
    rows = sort_rows(await breakdown(ctx.store, window, dimension), view)
    whole = BreakdownRow(None, total(r.totals for r in rows))
    shown = rows if view.show_all else rows[: ctx.config.top_n]
    path = f"{layout.BASE}/breakdown/{dimension}"
    sort_urls = {}
    for key in BREAKDOWN_COLUMNS:
        flip = "asc" if key == view.sort and view.descending else "desc"
        sort_urls[key] = url(path, {**ctx.params, "sort": key, "dir": flip})
    head = table_head(_columns(dimension), sort_urls, view.sort)
    body = (_breakdown_row(r, dimension, whole, ctx) for r in shown)
    more = ""
    if len(shown) < len(rows):
        more = link(url(path, {**ctx.params, "top": "all"}), f"Show all {len(rows):,}",
                    "show-all")
    note = (
        f'<p class="muted" id="row-count" data-shown={attr(len(shown))} '
        f"data-total={attr(len(rows))}>{len(shown):,} of {len(rows):,} · {more}</p>"
    )
    content = (
        layout.controls(path, ctx.params, window)
        + totals_cards(whole.totals)
        + note
        + table(head, body, table_id="breakdown")
    )
    return layout.page(f"Spend by {dimension}", content, active=dimension, as_of=ctx.now)


def _request_row(record: UsageRecord) -> str:
    principal = record.principal
    href = f"{layout.BASE}/request/{record.request_id}"
    cost = "unknown" if record.cost is None else money(record.cost)
    return (
        f"<tr data-request={attr(record.request_id)}>"
        f"<td>{esc(record.created_at.strftime('%m-%d %H:%M:%S'))}</td>"
        f"<td>{link(href, record.request_id)}</td>"
        f"<td>{esc(record.resolved_model or record.requested_model)}</td>"
        f"<td>{label(principal.user if principal else None)}</td>"
        f"<td>{label(record.tags.feature)}</td><td>{label(record.tags.env)}</td>"
        f"<td>{esc(record.status.value)}</td>"
        f'<td class="num">{count(record.usage.input_tokens)}</td>'
        f'<td class="num">{count(record.usage.output_tokens)}</td>'
        f'<td class="num">{record.latency_ms:,.0f} ms</td>'
        f'<td class="num" data-usd={attr("" if record.cost is None else f"{record.cost:f}")}>'
        f"{esc(cost)}</td></tr>"
    )


def requests_table(records: Sequence[UsageRecord]) -> str:
    names = ("time (UTC)", "request", "model", "user", "feature", "env", "status", "in", "out",
             "latency", "cost")
    columns = tuple(Column(n, n, numeric=i >= 7) for i, n in enumerate(names))
    return table(table_head(columns, {}, ""), (_request_row(r) for r in records),
                 table_id="requests", empty="No requests in this range.")


async def scope_page(ctx: PageContext, dimension: str, value: str) -> str:
    """One value of one dimension: its spend over time and its latest requests."""
    window = params.window(ctx.params, ctx.now)
    stack = "team" if dimension == "model" else "model"
    filters = {dimension: value}
    data = await spend_over_time(ctx.store, window, stack, filters, ctx.config.stack_series)
    records = await latest_requests(ctx.store, window, filters, ctx.config.recent_requests,
                                    params.before(ctx.params))
    older = ""
    if len(records) == ctx.config.recent_requests:
        cursor = records[-1].created_at.isoformat()
        older = link(url(f"{layout.BASE}/scope", {**ctx.params, "before": cursor}), "Older →",
                     "older")
    content = (
        f'<p id="scope" data-dim={attr(dimension)} data-value={attr(value)}>'
        f"{esc(dimension)} = <strong>{esc(value)}</strong> · "
        f"{link(layout.nav_href(dimension), 'back to all')}</p>"
        + layout.controls(f"{layout.BASE}/scope", ctx.params, window)
        + totals_cards(data.totals)
        + f"<h2>Spend per {esc(window.grain)} by {esc(stack)}</h2>"
        + stacked_bars(data) + legend(data)
        + "<h2>Latest requests</h2>" + requests_table(records) + f"<p>{older}</p>"
    )
    title = f"{_TITLES.get(dimension, dimension)}: {value}"
    return layout.page(title, content, active=dimension, as_of=ctx.now)


def _record_fields(record: UsageRecord) -> list[tuple[str, str]]:
    p = record.principal
    cost = "unknown" if record.cost is None else f"{money(record.cost)} ({record.cost:f})"
    fields = [
        ("request id", record.request_id), ("created", record.created_at.isoformat()),
        ("finished", record.finished_at.isoformat() if record.finished_at else "-"),
        ("api", record.api), ("stream", str(record.stream)),
        ("key", p.key_id if p else "-"), ("user", (p.user if p else None) or "-"),
        ("team", (p.team if p else None) or "-"), ("feature", record.tags.feature or "-"),
        ("session", record.tags.session or "-"), ("env", record.tags.env or "-"),
        ("requested model", record.requested_model),
        ("resolved model", record.resolved_model or "-"),
        ("provider", record.provider or "-"), ("reported model", record.reported_model or "-"),
        ("input tokens", count(record.usage.input_tokens)),
        ("output tokens", count(record.usage.output_tokens)),
        ("cache read tokens", count(record.usage.cache_read_tokens)),
        ("cost", cost), ("price", f"{record.price_source or '-'} · {record.price_version or '-'}"),
        ("latency", f"{record.latency_ms:,.1f} ms (upstream {record.upstream_latency_ms:,.1f})"),
        ("status", f"{record.status.value} (HTTP {record.http_status})"),
        ("error", record.error_message or record.error_type or "-"),
    ]
    fields += [(f"saving: {s.kind}", f"{'unknown' if s.cost_saved is None else money(s.cost_saved)}"
                f" · {s.tokens_saved:,} tokens · {s.detail or ''}") for s in record.savings]
    fields += [(f"attempt {i + 1}", f"{a.model} via {a.endpoint} ({a.provider}): "
                f"HTTP {a.http_status}, {a.latency_ms:,.0f} ms{', ' + a.error if a.error else ''}")
               for i, a in enumerate(record.attempts)]
    return fields


def request_page(ctx: PageContext, record: UsageRecord) -> str:
    items = [(name, esc(value)) for name, value in _record_fields(record)]
    content = f'<div id="record" data-request={attr(record.request_id)}>'
    content += definition_list(items) + "</div>"
    return layout.page("Request", content, active="", as_of=ctx.now)
