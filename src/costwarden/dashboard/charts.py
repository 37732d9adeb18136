"""Server-side SVG charts: stacked spend bars and a budget burn-down.

Inline SVG needs no script and no network (the gateway may run air-gapped, and the page's CSP
allows no script at all). Colours come from CSS classes (``s0``…, ``so`` for "other"), never
inline styles, which the CSP would block. Every label goes through ``esc``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from costwarden.dashboard.markup import NONE_LABEL, attr, esc, exact, money
from costwarden.dashboard.queries import TimeSeries

_ZERO = Decimal(0)
WIDTH = 960
HEIGHT = 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 10, 10, 28
_X_LABELS = 8  # at most this many time labels under a chart
# Past this many bars a segment is too thin to point at: one tooltip per bar instead of one per
# segment (formatting money for every segment of 720 hourly bars took ~0.2 s).
_SEGMENT_TITLES_UP_TO = 200


_NICE_STEPS = tuple(Decimal(s) for s in ("1", "1.2", "1.5", "2", "2.5", "3", "4", "5", "6", "8"))


def nice_ceiling(value: Decimal) -> Decimal:
    """The smallest round number (1, 1.2, 1.5, 2 … 8 × 10^k) not below ``value`` (1 for
    nothing): an axis top with little wasted height whose quarters read well."""
    if value <= 0:
        return Decimal(1)
    power = Decimal(1).scaleb(value.adjusted())
    for step in _NICE_STEPS:
        if power * step >= value:
            return power * step
    return power * 10


@dataclass(frozen=True, slots=True)
class Frame:
    """The plot area inside a ``WIDTH`` × ``HEIGHT`` SVG, and the money at its top."""

    top_usd: Decimal
    left: float = _LEFT
    right: float = WIDTH - _RIGHT
    top: float = _TOP
    bottom: float = HEIGHT - _BOTTOM

    def y(self, usd: Decimal | float) -> float:
        share = float(usd) / float(self.top_usd)
        return self.bottom - share * (self.bottom - self.top)

    def y_axis(self) -> str:
        parts = []
        for quarter in range(5):
            usd = self.top_usd * quarter / 4
            y = self.y(usd)
            parts.append(
                f'<line class="grid" x1="{self.left}" x2="{self.right}" y1="{y:.1f}" '
                f'y2="{y:.1f}"/><text class="tick" x="{self.left - 6}" y="{y + 4:.1f}" '
                f'text-anchor="end">{esc(money(usd))}</text>'
            )
        return "".join(parts)


def _svg(chart_id: str, body: str, caption: str) -> str:
    return (
        f'<svg id={attr(chart_id)} class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label={attr(caption)} xmlns="http://www.w3.org/2000/svg">'
        f"<title>{esc(caption)}</title>{body}</svg>"
    )


def series_class(index: int, other: bool) -> str:
    return "so" if other else f"s{index % 10}"


def series_name(name: str | None, other: bool) -> str:
    return "other" if other else (NONE_LABEL if name is None else name)


def _time_label(moment: datetime, hourly: bool) -> str:
    return moment.strftime("%m-%d %H:00" if hourly else "%m-%d")


def stacked_bars(data: TimeSeries, chart_id: str = "spend-chart") -> str:
    """One bar per bucket, one stacked segment per series; each bar group carries its bucket
    start and exact total (``data-start``, ``data-usd``) for tests and tooltips."""
    n = len(data.starts)
    totals = [sum((s.values[i] for s in data.series), _ZERO) for i in range(n)]
    frame = Frame(nice_ceiling(max(totals, default=_ZERO)))
    slot = (frame.right - frame.left) / max(n, 1)
    bar = max(slot * 0.8, 0.5)
    hourly = data.window.grain == "hour"
    detailed = n <= _SEGMENT_TITLES_UP_TO
    classes = [attr(series_class(k, s.other)) for k, s in enumerate(data.series)]
    names = [esc(series_name(s.name, s.other)) for s in data.series]
    parts = [frame.y_axis()]
    for i, start in enumerate(data.starts):
        x = frame.left + i * slot + (slot - bar) / 2
        when = esc(_time_label(start, hourly))
        parts.append(
            f'<g class="bar" data-start={attr(start.isoformat())} '
            f"data-usd={attr(exact(totals[i]))}><title>{when}: {esc(money(totals[i]))}</title>"
        )
        base = 0.0
        for k, series in enumerate(data.series):
            value = series.values[i]
            if value <= 0:
                continue
            top = base + float(value)
            y0, y1 = frame.y(base), frame.y(top)
            title = f"<title>{when} {names[k]}: {esc(money(value))}</title>" if detailed else ""
            parts.append(
                f'<rect class={classes[k]} x="{x:.2f}" y="{y1:.2f}" width="{bar:.2f}" '
                f'height="{max(y0 - y1, 0.5):.2f}">{title}</rect>'
            )
            base = top
        parts.append("</g>")
    every = max(1, -(-n // _X_LABELS))
    for i in range(0, n, every):
        x = frame.left + (i + 0.5) * slot
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
            f"{esc(_time_label(data.starts[i], hourly))}</text>"
        )
    caption = f"Spend per {data.window.grain} by {data.dimension}"
    return _svg(chart_id, "".join(parts), caption)


def legend(data: TimeSeries) -> str:
    items = "".join(
        f'<li><span class={attr("swatch " + series_class(k, s.other))}></span>'
        f"{esc(series_name(s.name, s.other))} "
        f'<span class="muted">{esc(money(s.total))}</span></li>'
        for k, s in enumerate(data.series)
    )
    return f'<ul class="legend">{items}</ul>'


@dataclass(frozen=True, slots=True)
class BurnDown:
    """A budget period: cumulative spend at the end of each past day, the cap, and the
    projection from now to the period's end with its interval."""

    days: Sequence[date]  # every day of the period
    cumulative: Sequence[Decimal]  # one per day up to today (today: spent so far)
    cap: Decimal
    projected: Decimal
    low: Decimal
    high: Decimal


def burn_down(data: BurnDown, chart_id: str) -> str:
    n = len(data.days)
    frame = Frame(nice_ceiling(max(data.cap, data.high, *data.cumulative, _ZERO) * Decimal("1.05")))
    step = (frame.right - frame.left) / max(n, 1)

    def x(day_index: float) -> float:
        return frame.left + day_index * step

    actual = " ".join(
        f"{x(i + 1):.1f},{frame.y(v):.1f}" for i, v in enumerate(data.cumulative)
    )
    spent = data.cumulative[-1] if data.cumulative else _ZERO
    now_x, now_y = x(len(data.cumulative)), frame.y(spent)
    end_x = x(n)
    band = (
        f"{now_x:.1f},{now_y:.1f} {end_x:.1f},{frame.y(data.high):.1f} "
        f"{end_x:.1f},{frame.y(data.low):.1f}"
    )
    cap_y = frame.y(data.cap)
    parts = [
        frame.y_axis(),
        f'<polygon class="band" points="{band}"><title>{esc(_interval(data))}</title></polygon>',
        f'<line class="projection" x1="{now_x:.1f}" y1="{now_y:.1f}" x2="{end_x:.1f}" '
        f'y2="{frame.y(data.projected):.1f}"/>',
        f'<polyline class="actual" points="{x(0):.1f},{frame.y(_ZERO):.1f} {actual}"/>',
        f'<line class="cap" x1="{frame.left}" x2="{frame.right}" y1="{cap_y:.1f}" y2="{cap_y:.1f}">'
        f"<title>{esc('cap ' + money(data.cap))}</title></line>",
    ]
    every = max(1, -(-n // _X_LABELS))
    for i in range(0, n, every):
        parts.append(
            f'<text class="tick" x="{x(i + 0.5):.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
            f"{esc(data.days[i].strftime('%m-%d'))}</text>"
        )
    return _svg(chart_id, "".join(parts), "Cumulative spend against the cap")


def _interval(data: BurnDown) -> str:
    return f"projected {money(data.projected)} ({money(data.low)} – {money(data.high)})"

