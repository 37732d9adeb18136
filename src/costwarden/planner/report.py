"""What every planner answer prints: its assumptions, the arithmetic, tables and a verdict.

Calculators build an ``Explanation`` (plain data, no terminal types) so a library caller can
inspect or serialise it; ``render`` turns it into rich output for the CLI.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


@dataclass(frozen=True, slots=True)
class Assumption:
    name: str
    value: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class TableData:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(slots=True)
class Explanation:
    title: str
    assumptions: list[Assumption] = field(default_factory=list)
    arithmetic: list[str] = field(default_factory=list)
    tables: list[TableData] = field(default_factory=list)
    verdict: str = ""

    def assume(self, name: str, value: object, note: str = "") -> None:
        self.assumptions.append(Assumption(name, str(value), note))

    def step(self, line: str) -> None:
        self.arithmetic.append(line)

    def table(self, title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
        cells = tuple(tuple(str(c) for c in row) for row in rows)
        self.tables.append(TableData(title, tuple(columns), cells))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def render(explanation: Explanation, console: Console) -> None:
    console.print(f"[bold]{escape(explanation.title)}[/bold]")
    if explanation.assumptions:
        table = Table(title="Assumptions", title_justify="left", show_lines=False)
        for column in ("input", "value", "source / note"):
            table.add_column(column, overflow="fold")
        for item in explanation.assumptions:
            table.add_row(escape(item.name), escape(item.value), escape(item.note))
        console.print(table)
    if explanation.arithmetic:
        console.print("[bold]Arithmetic[/bold]")
        for line in explanation.arithmetic:
            console.print(f"  {line}", highlight=False, markup=False)
    for data in explanation.tables:
        table = Table(title=data.title, title_justify="left")
        for index, column in enumerate(data.columns):
            numeric = index > 0 and all(_numeric(row[index]) for row in data.rows)
            table.add_column(escape(column), justify="right" if numeric else "left")
        for row in data.rows:
            table.add_row(*(escape(cell) for cell in row))
        console.print(table)
    if explanation.verdict:
        console.print(f"[bold]Verdict:[/bold] {escape(explanation.verdict)}", highlight=False)


def _numeric(cell: str) -> bool:
    text = cell.lstrip("-$~").replace(",", "").split(" ")[0].rstrip("%×x")
    return text.replace(".", "", 1).isdigit() or cell == "-"


def fmt_usd(value: Decimal | float, places: int | None = None) -> str:
    """Dollars for people: cents above $100, 4 significant digits for small amounts."""
    amount = Decimal(repr(value)) if isinstance(value, float) else value
    if places is None:
        magnitude = abs(amount)
        small = 0 < magnitude < 100
        places = max(2, 3 - magnitude.adjusted()) if small else 2
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.{places}f}"


def fmt_num(value: Decimal | float | int, places: int = 2) -> str:
    number = float(value)
    if number == int(number) and abs(number) < 1e15:
        return f"{int(number):,}"
    return f"{number:,.{places}f}"


def fmt_pct(share: Decimal | float, places: int = 1) -> str:
    return f"{float(share) * 100:.{places}f} %"


def fmt_hours(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"
