"""How ``costwarden distill`` prints: the candidates table and the export summary (rich), or
the same figures as JSON (money as exact decimal text)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rich.table import Table

from costwarden.distill.candidates import MIN_EXAMPLES, Candidate
from costwarden.distill.economics import TargetRates, describe, to_dict
from costwarden.distill.export import WrittenFile
from costwarden.planner.strategy import BreakEven
from costwarden.reports import format_money


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f} %"


def candidates_table(candidates: Sequence[Candidate], rates: TargetRates, title: str) -> Table:
    table = Table(title=title, caption=f"target: {rates.name}, {rates.epochs} epochs")
    for name in ("feature", "model"):
        table.add_column(name)
    for name in (
        "requests",
        "spend/mo",
        "on target/mo",
        "saving/mo",
        "captured",
        "repeats",
        "near-dup",
        "training",
        "break-even",
        f"net {candidates[0].horizon_months if candidates else 12} mo",
        "ready",
    ):
        table.add_column(name, justify="right")
    for c in candidates:
        repetition = c.captured.repetition
        table.add_row(
            c.usage.feature,
            c.usage.model,
            f"{c.usage.requests:,}",
            format_money(c.monthly_current),
            format_money(c.monthly_target),
            format_money(c.monthly_saving),
            f"{c.captured.pairs:,}",
            _share(repetition.exact_repeat_share if repetition else None),
            _share(repetition.near_duplicate_share if repetition else None),
            format_money(c.training_cost),
            describe(c.break_even),
            format_money(c.horizon_saving),
            "yes" if c.ready else "no",
        )
    return table


@dataclass(frozen=True, slots=True)
class ExportSummary:
    feature: str
    train: WrittenFile
    validation: WrittenFile | None
    duplicates: int
    rates: TargetRates
    # A month on the current model and on the target (None: no recorded traffic), and the
    # planner's break-even of this training cost against that saving.
    monthly: tuple[Decimal, Decimal] | None
    break_even: BreakEven | None

    @property
    def training_cost(self) -> Decimal:
        return self.rates.training_cost(self.train.tokens)

    def to_dict(self) -> dict[str, Any]:
        saving = self.monthly[0] - self.monthly[1] if self.monthly else None
        return {
            "feature": self.feature,
            "train": self.train.to_dict(),
            "validation": self.validation.to_dict() if self.validation else None,
            "duplicates_dropped": self.duplicates,
            "target": self.rates.to_dict(),
            "training_cost": f"{self.training_cost:.6f}",
            "monthly_saving": f"{saving:.6f}" if saving is not None else None,
            "break_even": to_dict(self.break_even) if self.break_even else None,
        }

    def lines(self) -> list[str]:
        train, validation = self.train, self.validation
        out = [
            f"wrote {train.examples:,} training examples ({train.tokens:,} tokens): {train.path}"
        ]
        if validation is not None:
            out.append(
                f"wrote {validation.examples:,} validation examples "
                f"({validation.tokens:,} tokens): {validation.path}"
            )
        out.append(f"dropped {self.duplicates:,} duplicate prompts (the newest answer kept)")
        out.append(
            f"estimated training cost on {self.rates.name}: {format_money(self.training_cost)} "
            f"({train.tokens:,} tokens × {self.rates.epochs} epochs)"
        )
        if self.monthly is None or self.break_even is None:
            out.append("break-even: unknown (no recorded traffic of this feature in the window)")
        else:
            saving = format_money(self.monthly[0] - self.monthly[1])
            out.append(f"saving {saving}/month; break-even: {describe(self.break_even)}")
        if train.examples < MIN_EXAMPLES:
            out.append(f"warning: a fine-tuning job needs at least {MIN_EXAMPLES} examples")
        return out
