"""Counts of the hostile-input tests (fuzzed requests, malformed cases, statuses seen), shown
in pytest's terminal summary so that a run reports how much it threw at the gateway.

Tests add to a ``Tally`` through the ``hostile_tally`` fixture (``conftest.py``); the summary
hook prints one block per tally name. Nothing is written to disk.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest

TALLIES = pytest.StashKey[dict[str, "Tally"]]()


@dataclass
class Tally:
    """Requests sent per label (an operation or a case group), and the statuses answered."""

    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)

    def add(self, label: str, status: int) -> None:
        self.requests[label] += 1
        self.statuses[status] += 1

    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def lines(self, name: str) -> list[str]:
        total = sum(self.requests.values())
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        out = [
            f"{name}: {total} requests over {len(self.requests)} operations/groups, "
            f"{self.server_errors()} answered 5xx",
            f"  statuses  {statuses}",
        ]
        out += [f"  {n:6d}  {label}" for label, n in sorted(self.requests.items())]
        return out


def tally_for(config: pytest.Config, name: str) -> Tally:
    tallies = config.stash.setdefault(TALLIES, {})
    return tallies.setdefault(name, Tally())


def summary_lines(config: pytest.Config) -> list[str]:
    lines: list[str] = []
    for name, tally in sorted(config.stash.get(TALLIES, {}).items()):
        lines += tally.lines(name)
    return lines
