"""The Prometheus text exposition format (version 0.0.4), written from plain metric families.

The registry keeps its numbers in whatever shape is cheapest to update on the request path;
at scrape time it describes them as ``Family`` values and ``render`` turns those into the text
Prometheus reads. Counters may hold ``Decimal`` (money): they are written as exact decimal text,
so a scrape shows the same dollars the ledger holds, not a float's nearest neighbour.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

Number = int | float | Decimal
LabelValues = tuple[str, ...]


@dataclass(slots=True)
class HistogramCounts:
    """One histogram series: per-bucket (not cumulative) counts, the last one for +Inf."""

    buckets: list[int]
    total: float = 0.0  # the sum of the observed values, in the histogram's unit

    def observe(self, index: int, value: float) -> None:
        self.buckets[index] += 1
        self.total += value

    def merge(self, other: HistogramCounts) -> None:
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.total += other.total


@dataclass(slots=True)
class Family:
    """One metric: its name (counters end in ``_total``), type, help text, label names, and
    one value per label-value tuple (``HistogramCounts`` for a histogram)."""

    name: str
    kind: str  # "counter" | "gauge" | "histogram"
    help: str
    labels: tuple[str, ...] = ()
    samples: dict[LabelValues, Number] = field(default_factory=dict)
    histograms: dict[LabelValues, HistogramCounts] = field(default_factory=dict)
    bounds: Sequence[float] = ()  # histogram bucket upper bounds, without +Inf

    def add(self, labels: LabelValues, value: Number) -> None:
        """Sum ``value`` into the series ``labels`` (several source series may fold into one)."""
        current = self.samples.get(labels)
        self.samples[labels] = value if current is None else _plus(current, value)

    def add_histogram(self, labels: LabelValues, counts: HistogramCounts) -> None:
        mine = self.histograms.get(labels)
        if mine is None:
            mine = self.histograms[labels] = HistogramCounts([0] * len(counts.buckets))
        mine.merge(counts)


def _plus(a: Number, b: Number) -> Number:
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return a + b
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        raise TypeError("a family holds either money (Decimal) or plain numbers, not both")
    return a + b


def render(families: Iterable[Family]) -> bytes:
    """The text exposition of ``families``, series in sorted label order."""
    lines: list[str] = []
    escaped = _EscapedLabels()
    for family in families:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        if family.kind == "histogram":
            _histogram_lines(family, lines, escaped)
            continue
        line = _line_template(family.name, family.labels)
        for labels in sorted(family.samples):
            number = _number(family.samples[labels])
            lines.append(line % (*map(escaped.__getitem__, labels), number))
    lines.append("")
    return "\n".join(lines).encode("utf-8", "replace")


def _histogram_lines(family: Family, lines: list[str], escaped: _EscapedLabels) -> None:
    edges = [_number(bound) for bound in family.bounds] + ["+Inf"]
    bucket = _line_template(f"{family.name}_bucket", (*family.labels, "le"))
    total = _line_template(f"{family.name}_sum", family.labels)
    count = _line_template(f"{family.name}_count", family.labels)
    for labels in sorted(family.histograms):
        counts = family.histograms[labels]
        values = tuple(map(escaped.__getitem__, labels))
        cumulative = 0
        for edge, observed in zip(edges, counts.buckets, strict=True):
            cumulative += observed
            lines.append(bucket % (*values, edge, cumulative))
        lines.append(total % (*values, _number(counts.total)))
        lines.append(count % (*values, cumulative))


def _line_template(name: str, labels: Sequence[str]) -> str:
    """``name{a="%s",b="%s"} %s``: one ``%`` per series line instead of a join per label."""
    if not labels:
        return f"{name} %s"
    pairs = ",".join(f'{label}="%s"' for label in labels)
    return f"{name}{{{pairs}}} %s"


class _EscapedLabels(dict[str, str]):
    """Label values as written, escaped once per scrape however many lines repeat them.

    Label values come from clients (feature tags, model names): a quote or newline in one must
    not end the series line and forge another. A ``%`` is harmless: values are arguments of the
    line template, never part of it.
    """

    def __missing__(self, value: str) -> str:
        text = value
        if "\\" in text or '"' in text or "\n" in text:
            text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        self[value] = text
        return text


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: Number) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")  # exact, and never in exponent notation
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    # 12 significant digits: sums of float seconds print as 0.000346, not 0.00034599999999999995
    return format(value, ".12g")
