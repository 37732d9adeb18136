"""HTML building blocks: escaping, money and number text, links, sortable tables.

Every value that comes from the ledger is hostile (user names, features and environments are
request headers): it reaches the page only through ``esc`` or ``attr``, and URLs only through
``url``, which percent-encodes each query value. Functions here return HTML text; their
arguments are plain values, never HTML, unless the parameter is named ``html``.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from urllib.parse import urlencode

_CENT = Decimal("0.01")
_TINY_DIGITS = 3  # significant digits shown for a non-zero amount under one cent
NONE_LABEL = "(none)"


def esc(value: object) -> str:
    """Text content: ``<``, ``>``, ``&`` and both quotes escaped."""
    return html.escape(str(value), quote=True)


def attr(value: object) -> str:
    """A double-quoted attribute value."""
    return f'"{esc(value)}"'


def money(amount: Decimal) -> str:
    """Dollars to the cent; an amount under a cent (and not 0) to three significant digits,
    so that a sub-cent cost never reads as $0.00."""
    if amount != 0 and abs(amount) < _CENT:
        places = _TINY_DIGITS - 1 - amount.adjusted()
        shown = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    else:
        shown = amount.quantize(_CENT, rounding=ROUND_HALF_EVEN)
    sign = "-" if shown < 0 else ""
    return f"{sign}${abs(shown):,f}"


def exact(amount: Decimal) -> str:
    """The exact amount as positional decimal text, for ``data-usd`` and hover titles."""
    return f"{amount:f}"


def money_cell(amount: Decimal, name: str = "usd") -> str:
    """A right-aligned money cell: rounded text, the exact amount in ``data-<name>``."""
    value = exact(amount)
    return f'<td class="num" data-{name}={attr(value)} title={attr(value)}>{money(amount)}</td>'


def count(value: int) -> str:
    return f"{value:,}"


def percent(part: Decimal, whole: Decimal) -> str:
    if whole <= 0:
        return "-"
    return f"{(part / whole * 100).quantize(Decimal('0.1'), rounding=ROUND_HALF_EVEN)} %"


def raw_label(value: str | None) -> str:
    """The text of a dimension value (not escaped); a missing one reads ``(none)``."""
    return NONE_LABEL if value is None else value


def label(value: str | None) -> str:
    """Escaped text of a dimension value; a missing one reads ``(none)``."""
    return esc(raw_label(value))


def url(path: str, params: Mapping[str, str | int | None] | None = None) -> str:
    """``path`` with its query string, each value percent-encoded; None values left out.
    The result is attribute-escaped by the caller (``href=attr(url(...))``)."""
    kept = {k: str(v) for k, v in (params or {}).items() if v is not None}
    return f"{path}?{urlencode(kept)}" if kept else path


def link(href: str, text: str, element_id: str | None = None) -> str:
    ident = "" if element_id is None else f" id={attr(element_id)}"
    return f"<a href={attr(href)}{ident}>{esc(text)}</a>"


@dataclass(frozen=True, slots=True)
class Column:
    key: str  # the sort key in the query string
    title: str
    numeric: bool = True


def table_head(columns: Sequence[Column], sort_url: Mapping[str, str], active: str) -> str:
    """Header row; a column with an entry in ``sort_url`` is a link that sorts by it."""
    cells = []
    for column in columns:
        text = esc(column.title) + (" ▾" if column.key == active else "")
        css = ' class="num"' if column.numeric else ""
        href = sort_url.get(column.key)
        inner = f"<a href={attr(href)}>{text}</a>" if href else text
        cells.append(f"<th{css} data-col={attr(column.key)}>{inner}</th>")
    return f"<thead><tr>{''.join(cells)}</tr></thead>"


def table(
    head_html: str, rows_html: Iterable[str], *, table_id: str, empty: str = "No data."
) -> str:
    body = "".join(rows_html)
    if not body:
        return f'<p class="empty" id={attr(table_id)}>{esc(empty)}</p>'
    return f"<table id={attr(table_id)}>{head_html}<tbody>{body}</tbody></table>"


def definition_list(items: Iterable[tuple[str, str]]) -> str:
    """``<dl>`` of (term, already-built HTML) pairs."""
    body = "".join(f"<dt>{esc(term)}</dt><dd>{html_value}</dd>" for term, html_value in items)
    return f"<dl>{body}</dl>"
