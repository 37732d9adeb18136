"""``costwarden savings``: what the savings stages saved over a period, next to what was spent.

Read from the ledger only: each record stores its savings (``records.Saving``) with it, so the
report is a sum over the records of the period — the same records ``costwarden report`` sums
for spend. Money stays ``Decimal``; a saving whose amount is unknown (no price for the model)
is counted in ``unknown`` rather than as 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from rich.table import Table

from costwarden.ledger.store import Store
from costwarden.reports import format_money

KINDS = ("cache_exact", "cache_semantic", "cascade", "router", "trim")


@dataclass(slots=True)
class KindTotal:
    kind: str
    requests: int = 0
    cost_saved: Decimal = Decimal(0)
    tokens_saved: int = 0
    unknown: int = 0  # savings whose amount is not known (unpriced model)

    def add(self, saving: dict[str, Any]) -> None:
        self.requests += 1
        self.tokens_saved += int(saving.get("tokens_saved") or 0)
        amount = saving.get("cost_saved")
        if amount is None:
            self.unknown += 1
        else:
            self.cost_saved += Decimal(amount)


@dataclass(slots=True)
class SavingsReport:
    since: datetime
    until: datetime
    spent: Decimal  # what the period's requests cost (known costs)
    requests: int
    kinds: dict[str, KindTotal] = field(default_factory=dict)

    @property
    def saved(self) -> Decimal:
        return sum((k.cost_saved for k in self.kinds.values()), Decimal(0))

    @property
    def saved_share(self) -> Decimal | None:
        """Saved ÷ (spent + saved): the part of the bill without savings that was avoided."""
        gross = self.spent + self.saved
        return self.saved / gross if gross > 0 else None

    def to_dict(self) -> dict[str, Any]:
        share = self.saved_share
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "requests": self.requests,
            "spent": f"{self.spent:f}",
            "saved": f"{self.saved:f}",
            "saved_share": None if share is None else f"{share:.6f}",
            "by_kind": [
                {
                    "kind": k.kind,
                    "requests": k.requests,
                    "cost_saved": f"{k.cost_saved:f}",
                    "tokens_saved": k.tokens_saved,
                    "unknown": k.unknown,
                }
                for k in self.kinds.values()
            ],
        }


def total_by_kind(lists: Iterable[str]) -> dict[str, KindTotal]:
    """Sum the stored savings lists (JSON text) by kind, in ``KINDS`` order."""
    totals = {kind: KindTotal(kind) for kind in KINDS}
    for text in lists:
        for saving in orjson.loads(text):
            kind = saving["kind"]
            totals.setdefault(kind, KindTotal(kind)).add(saving)
    return {kind: total for kind, total in totals.items() if total.requests}


async def savings_report(store: Store, since: datetime, until: datetime) -> SavingsReport:
    totals = await store.spend([], since, until)
    spent = sum((row.cost for row in totals), Decimal(0))
    requests = sum(row.requests for row in totals)
    kinds = total_by_kind(await store.savings_lists(since, until))
    return SavingsReport(since, until, spent, requests, kinds)


def render_savings(report: SavingsReport) -> Table:
    title = f"Savings {report.since:%Y-%m-%d %H:%M} → {report.until:%Y-%m-%d %H:%M} UTC"
    table = Table(title=title)
    for name in ("stage", "requests", "tokens saved", "saved", "unknown"):
        table.add_column(name, justify="left" if name == "stage" else "right")
    for kind in report.kinds.values():
        table.add_row(
            kind.kind,
            str(kind.requests),
            f"{kind.tokens_saved:,}",
            format_money(kind.cost_saved),
            str(kind.unknown),
        )
    table.add_section()
    table.add_row("saved", "", "", format_money(report.saved), "")
    table.add_row("spent", str(report.requests), "", format_money(report.spent), "")
    share = report.saved_share
    shown = "-" if share is None else f"{share * 100:.1f} %"
    table.add_row("saved ÷ (spent + saved)", "", "", shown, "")
    return table
