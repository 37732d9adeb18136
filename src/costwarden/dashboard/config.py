"""Typed settings of the dashboard (free of gateway imports: ``costwarden.config`` loads it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DashboardConfig(BaseModel):
    """``dashboard:`` in the config file. The login is the admin key (``gateway.admin_key_env``);
    with no admin key set the dashboard answers 403, like the admin API."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # None: Secure only when the request came over https (uvicorn's scope scheme); set true
    # behind a TLS-terminating proxy, which the gateway cannot see.
    secure_cookie: bool | None = None
    top_n: int = Field(default=20, ge=1, le=1000)  # rows of a breakdown table before "show all"
    recent_requests: int = Field(default=50, ge=1, le=500)  # requests per drill-down page
    stack_series: int = Field(default=8, ge=1, le=20)  # chart series before "other"
