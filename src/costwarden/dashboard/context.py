"""What every page renders from: the store, the policy engine, the config, and the moment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from costwarden.dashboard.config import DashboardConfig
from costwarden.ledger.store import Store
from costwarden.policy.engine import PolicyEngine


@dataclass(frozen=True, slots=True)
class PageContext:
    store: Store
    policy: PolicyEngine
    config: DashboardConfig
    tz: ZoneInfo  # the policy timezone: budget periods and forecast days
    now: datetime  # UTC; one moment for the whole page
    path: str
    params: Mapping[str, str]
