"""Typed settings of the scheduled price and version watch (``monitor/price_watch_job.py``).

Kept free of pricing and ledger imports so ``costwarden.config`` can hang it under its monitor
settings without an import cycle.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PriceWatchConfig(BaseModel):
    """How often the price watch runs, and how far back its first run looks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    # Prices move on dates and deploys, not by the minute: hourly finds a change the same hour.
    interval_s: float = Field(default=3600.0, gt=0)
    # The first run of a process (no earlier run to start from) looks this far back for each
    # model's last bill and for versions answered against a pin. Later runs read only the rows
    # since the previous run.
    lookback_s: float = Field(default=86400.0, gt=0)
