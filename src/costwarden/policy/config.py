"""Typed configuration of the spend-control engine and of the counter backend.

The lead mounts these as ``Settings.policy: PolicyConfig`` and ``Settings.state: StateConfig``.
Every rule is data: the engine compiles it per request into keys and caps, so editing a limit
takes effect on the next admission without touching stored counters (a counter is keyed by what
it counts, e.g. ``budget:team=ml:month:2026-11``, never by the rule that caps it).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Counters hold integer micro-cents (1e-8 USD) and Lua does arithmetic in doubles, which are
# exact below 2**53 units (~$90M); a cap above that could not be enforced exactly.
MAX_LIMIT_USD = Decimal(90_000_000)

BudgetDimension = Literal["team", "user", "key", "feature", "env", "model"]
RateDimension = Literal["key", "user", "team", "model"]
Period = Literal["day", "week", "month", "lifetime"]
EACH = "*"  # a scope value meaning "each distinct value gets its own counter"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _scope_from_shorthand(value: Any) -> Any:
    """Accept ``scope: global`` (or null) as the empty scope, i.e. one counter for everything."""
    if value is None or value == "global":
        return {}
    return value


def _check_scope_values(scope: dict[str, str]) -> dict[str, str]:
    for dimension, value in scope.items():
        if not value:
            raise ValueError(f"scope {dimension!r} needs a value (or '*' for each value)")
        if "\x00" in value:  # no request can carry it, and PostgreSQL cannot store it
            raise ValueError(f"scope {dimension!r} value contains a NUL character")
    return scope


class BudgetRule(_Model):
    """A hard cap on spend for one scope over one calendar period.

    ``scope`` maps dimensions to values: ``{}`` is global, ``{team: ml, model: gpt-4o}`` caps the
    ml team's gpt-4o spend, ``{user: "*"}`` gives every user their own budget of ``limit_usd``.
    """

    name: str | None = None
    scope: dict[BudgetDimension, str] = Field(default_factory=dict)
    period: Period = "month"
    limit_usd: Decimal = Field(gt=0, le=MAX_LIMIT_USD)
    soft_thresholds: tuple[int, ...] = (50, 80, 100)  # percent of limit that emit events

    _shorthand = field_validator("scope", mode="before")(_scope_from_shorthand)

    @field_validator("scope")
    @classmethod
    def _values(cls, scope: dict[str, str]) -> dict[str, str]:
        return _check_scope_values(scope)

    @field_validator("soft_thresholds")
    @classmethod
    def _percentages(cls, thresholds: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 0 < t <= 100 for t in thresholds):
            raise ValueError("soft_thresholds are percentages in (0, 100]")
        return tuple(sorted(set(thresholds)))

    def label(self) -> str:
        if self.name:
            return self.name
        dims = ",".join(f"{d}={v}" for d, v in sorted(self.scope.items())) or "global"
        return f"{dims}/{self.period}"


class RateLimitRule(_Model):
    """Requests and/or tokens per minute for one scope (``"*"``: per distinct value)."""

    name: str | None = None
    scope: dict[RateDimension, str] = Field(default_factory=dict)
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)

    _shorthand = field_validator("scope", mode="before")(_scope_from_shorthand)

    @field_validator("scope")
    @classmethod
    def _values(cls, scope: dict[str, str]) -> dict[str, str]:
        return _check_scope_values(scope)

    @model_validator(mode="after")
    def _has_a_limit(self) -> RateLimitRule:
        if self.rpm is None and self.tpm is None:
            raise ValueError("a rate limit needs rpm, tpm or both")
        return self


class SessionBreakerConfig(_Model):
    """Limits per agent session (the ``session`` tag, else the ``agent`` tag, within a key)."""

    max_steps: int | None = Field(default=None, gt=0)  # admitted requests per session
    max_spend_usd: Decimal | None = Field(default=None, gt=0, le=MAX_LIMIT_USD)
    # The K-th identical request (same fingerprint) inside loop_window_s trips the session.
    loop_repeat_k: int | None = Field(default=None, ge=2)
    loop_window_s: float = Field(default=60.0, gt=0)
    trip_seconds: float = Field(default=900.0, gt=0)  # how long a tripped session is refused
    idle_ttl_s: float = Field(default=86_400.0, gt=0)  # session state is forgotten after this


class VelocityBreakerConfig(_Model):
    """Per key: spend faster than ``usd_per_minute`` opens the breaker for ``cooldown_s``; then
    ``probe_requests`` requests are let through (half-open) and the breaker closes only if the
    spend they cause stays under the threshold."""

    usd_per_minute: Decimal | None = Field(default=None, gt=0, le=MAX_LIMIT_USD)
    cooldown_s: float = Field(default=60.0, gt=0)
    probe_requests: int = Field(default=1, gt=0)


class BreakerConfig(_Model):
    session: SessionBreakerConfig = SessionBreakerConfig()
    velocity: VelocityBreakerConfig = VelocityBreakerConfig()


class EnvRule(_Model):
    """What one environment (the ``env`` tag) may use.

    ``model_map`` sends a requested model to another (e.g. ``gpt-4o`` → a local model in dev);
    ``allowed_models`` (None = all) is checked after mapping and pinning; ``budgets`` apply only
    to requests of this environment (the ``env`` dimension is added to their scope).
    """

    allowed_models: tuple[str, ...] | None = None
    model_map: dict[str, str] = Field(default_factory=dict)
    budgets: tuple[BudgetRule, ...] = ()

    @field_validator("budgets")
    @classmethod
    def _no_env_in_scope(cls, budgets: tuple[BudgetRule, ...]) -> tuple[BudgetRule, ...]:
        if any("env" in rule.scope for rule in budgets):
            raise ValueError("an environment's budgets get the env scope implicitly; omit it")
        return budgets


class PolicyConfig(_Model):
    timezone: str = "UTC"  # IANA zone in which day / week / month periods start
    budgets: tuple[BudgetRule, ...] = ()
    rate_limits: tuple[RateLimitRule, ...] = ()
    breakers: BreakerConfig = BreakerConfig()
    # alias → pinned version, e.g. {"gpt-4o": "gpt-4o-2024-08-06"}.
    pins: dict[str, str] = Field(default_factory=dict)
    # off: pass aliases through, only watch reported models; rewrite: send the pinned version;
    # reject: refuse the alias so clients name the version themselves.
    require_pins: Literal["off", "rewrite", "reject"] = "rewrite"
    environments: dict[str, EnvRule] = Field(default_factory=dict)
    # Output bound used for the worst-case estimate when a request gives no max_tokens; the
    # gateway sets it on the upstream call so that the estimate really is a bound.
    default_max_output_tokens: int = Field(default=4096, gt=0)
    # How often each replica re-reads the budgets managed at run time (admin API / CLI) from
    # the ledger database: a change made on one replica reaches the others within this.
    budget_refresh_s: float = Field(default=2.0, gt=0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {name!r}") from exc
        return name

    def all_budgets(self) -> tuple[BudgetRule, ...]:
        """Global budgets plus each environment's, with the env dimension made explicit."""
        scoped = tuple(
            rule.model_copy(update={"scope": {**rule.scope, "env": env}})
            for env, env_rule in sorted(self.environments.items())
            for rule in env_rule.budgets
        )
        return self.budgets + scoped


class StateConfig(_Model):
    """Where counters live: in this process (one replica) or in Redis (any number)."""

    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Per replica, for the scripts and for other commands each; a burst waits for one.
    redis_max_connections: int = Field(default=64, gt=0)
    # Every key is "{<prefix>}:...": one hash tag, so multi-key scripts run on Redis Cluster.
    key_prefix: str = Field(default="cw", min_length=1)
    # A reservation not settled or released within this is returned (dead replica); the
    # gateway renews leases of requests that run longer (long streams).
    lease_seconds: float = Field(default=120.0, gt=0)
    # While Redis cannot be reached (or is being re-seeded): refuse with a 503 (a hard cap is
    # never passed unchecked), or admit unchecked and charge the spend when Redis is back.
    on_unavailable: Literal["fail_closed", "fail_open"] = "fail_closed"
    # After Redis lost its data, the re-seeding replica waits this long before reading the
    # ledger: replicas restore their in-flight reservations and their spools reach the
    # database meanwhile (keep it above ledger.flush_interval_s).
    reseed_grace_s: float = Field(default=1.0, ge=0)
    # An admission waits at most this long for the counters to be re-seeded, then gets a 503.
    reseed_timeout_s: float = Field(default=15.0, gt=0)

    @field_validator("key_prefix")
    @classmethod
    def _no_braces(cls, prefix: str) -> str:
        if any(c in prefix for c in "{}"):
            raise ValueError("key_prefix must not contain braces (it becomes the hash tag)")
        return prefix
