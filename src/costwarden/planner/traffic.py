"""The ledger's real traffic as planner input: hourly request rate and token distributions.

Hourly counts come from the hourly cube (``Store.cube``), refreshed first so the newest records
count; token lengths from the newest successful records in the range (``Store.list_records``,
at most ``sample`` of them). Each calculator takes what it needs through ``overrides``, which
sit between a scenario file and the command-line flags.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from costwarden.ledger.cube import HOUR, floor_hour
from costwarden.ledger.store import Store
from costwarden.planner.report import Explanation
from costwarden.records import Status

_REFRESH_HOURS = 48
_MAX_REFRESH_PASSES = 64


@dataclass(frozen=True, slots=True)
class LedgerTraffic:
    since: datetime
    until: datetime
    hourly: tuple[tuple[datetime, int], ...]  # every hour of the range, zeros included
    input_tokens: tuple[int, ...]  # one per sampled successful request
    output_tokens: tuple[int, ...]

    @property
    def requests(self) -> int:
        return sum(count for _, count in self.hourly)

    @property
    def mean_rps(self) -> float:
        return self.requests / (len(self.hourly) * 3600) if self.hourly else 0.0

    def day_profile(self) -> list[float]:
        """Mean requests/s for each UTC hour of the day, over the days in the range."""
        totals, seen = [0.0] * 24, [0] * 24
        for start, count in self.hourly:
            totals[start.hour] += count
            seen[start.hour] += 1
        return [t / (n * 3600) if n else 0.0 for t, n in zip(totals, seen, strict=True)]

    def mean_tokens(self) -> tuple[int, int]:
        if not self.output_tokens:
            raise ValueError("the ledger has no successful requests in that range")
        count = len(self.output_tokens)
        return round(sum(self.input_tokens) / count), round(sum(self.output_tokens) / count)

    def overrides(self, command: str) -> dict[str, Any]:
        """The inputs of ``command`` this traffic provides (empty: the command takes none)."""
        if command == "selfhost":
            prompt, answer = self.mean_tokens()
            return {
                "requests_per_s": f"{self.mean_rps:.6f}",
                "input_tokens": max(prompt, 1),
                "output_tokens": max(answer, 1),
            }
        if command == "padding":
            self.mean_tokens()  # raises when there is nothing to sample
            return {
                "output_lengths": [max(n, 1) for n in self.output_tokens],
                "input_lengths": [max(n, 1) for n in self.input_tokens],
            }
        if command == "autoscale":
            return {"hourly_rps": self.day_profile(), "diurnal": None}
        return {}

    def describe(self, out: Explanation) -> None:
        out.assume(
            "ledger traffic",
            f"{self.requests:,} requests in {len(self.hourly)} hours",
            f"{self.since:%Y-%m-%d %H:%M} → {self.until:%Y-%m-%d %H:%M} UTC; "
            f"{len(self.output_tokens):,} requests sampled for token lengths",
        )


async def _refresh(store: Store) -> None:
    for _ in range(_MAX_REFRESH_PASSES):
        if await store.refresh_rollups(_REFRESH_HOURS) < _REFRESH_HOURS:
            return


async def ledger_traffic(
    store: Store,
    since: datetime,
    until: datetime,
    filters: Mapping[str, str] | None = None,
    sample: int = 20_000,
) -> LedgerTraffic:
    await _refresh(store)
    start = floor_hour(since)
    rows = await store.cube("hour", ["start"], start, until, dict(filters or {}))
    counts = {datetime.fromisoformat(r.group["start"] or ""): r.requests for r in rows}
    hours: list[tuple[datetime, int]] = []
    moment = start
    while moment < until:
        hours.append((moment, counts.get(moment, 0)))
        moment += HOUR
    records = await store.list_records(since, until, filters, limit=sample)
    done = [r for r in records if r.status == Status.OK and r.usage.output_tokens > 0]
    return LedgerTraffic(
        since,
        until,
        tuple(hours),
        tuple(r.usage.input_tokens for r in done),
        tuple(r.usage.output_tokens for r in done),
    )
