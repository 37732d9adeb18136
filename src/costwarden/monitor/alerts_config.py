"""Typed settings for alerts (kept free of aiohttp so ``costwarden.config`` stays light to import).

The webhook URL is a secret (Slack's carries a token in its path), so the file names the
environment variable that holds it, the same way model endpoints name ``api_key_env``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LogSinkConfig(_Model):
    """Write each alert as one log line on ``logger``."""

    type: Literal["log"] = "log"
    logger: str = "costwarden.alerts"


class WebhookSinkConfig(_Model):
    """POST each alert as Slack-compatible JSON to the URL held in ``url_env``."""

    type: Literal["webhook"] = "webhook"
    url_env: str
    # Bounded so a dead receiver costs memory once, not forever; overflow is dropped and logged.
    queue_size: int = Field(default=1000, ge=1)
    max_attempts: int = Field(default=4, ge=1)
    backoff_s: float = Field(default=0.5, ge=0)  # doubled after each failed attempt
    timeout_s: float = Field(default=10.0, gt=0)


SinkConfig = Annotated[LogSinkConfig | WebhookSinkConfig, Field(discriminator="type")]


class AlertsConfig(_Model):
    """Where alerts go and how often the same one may repeat.

    No sinks (the default) means alerting is off and policy events are only logged as before.
    """

    sinks: tuple[SinkConfig, ...] = ()
    # The same dedup key inside this window is suppressed (and counted), not re-sent.
    cooldown_s: float = Field(default=3600.0, ge=0)
