"""Redis going away, or coming back without its data: fail fast, recover by itself, and never
let a budget cap be reset by the outage.

**Unreachable.** A call that cannot reach Redis (refused, reset, timed out) opens a breaker:
calls then fail at once with ``CountersUnavailable`` (a 503) instead of each waiting on a
connection attempt, until a retry time that backs off from ``retry_base_s`` to
``retry_max_s``; the first call after it tries Redis again (half-open), and a success closes
the breaker. What is refused meanwhile is the backend's choice (``state.on_unavailable``).

**Data lost.** Redis restarted without persistence, failed over to an empty replica or was
flushed: the ``STEP`` script finds no ``epoch`` key and refuses (``redis_recovery_scripts``).
``Recovery.recover`` then restores this replica's reservations in flight and makes sure the
counters are re-seeded from the ledger exactly once across replicas (a ``SET NX`` lock; the
others wait for the epoch key), within ``reseed_timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from costwarden.errors import CountersUnavailable
from costwarden.state.base import SeedCounter, SeedSource

log = logging.getLogger("costwarden.state")

# What says "Redis is not there" (as opposed to a script error, which is a bug): the
# connection failed, a reply did not come in time, or the server is still loading its data.
DOWN_ERRORS = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, OSError)
# Leases restored per script call: one call stays short however many requests are in flight.
_RESTORE_BATCH = 200
_POLL_S = 0.05  # how often a replica waiting for another's seed looks for the epoch key

# A lease this replica holds: (its plan as packed for the scripts, its expiry in epoch s).
LiveLease = tuple[bytes, float]
# (script, args) -> reply, through the backend's breaker: what recovery calls Redis with.
ScriptCaller = Callable[[str, list[Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class RecoveryConfig:
    on_unavailable: Literal["fail_closed", "fail_open"] = "fail_closed"
    reseed_grace_s: float = 1.0
    reseed_timeout_s: float = 15.0
    retry_base_s: float = 0.05
    retry_max_s: float = 2.0


def unavailable(message: str, retry_s: float = 1.0) -> CountersUnavailable:
    """A 503 the OpenAI and Anthropic SDKs retry after ``retry_s``."""
    headers = {"retry-after": str(max(1, round(retry_s))), "x-should-retry": "true"}
    return CountersUnavailable(message, headers=headers)


class Breaker:
    """Fails calls fast while Redis is known to be down (see module docstring)."""

    def __init__(
        self, base_s: float, max_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._base_s = base_s
        self._max_s = max_s
        self._clock = clock
        self._failures = 0
        self._retry_at = 0.0

    @property
    def down(self) -> bool:
        """Redis failed last time and it is not yet time to try again."""
        return self._failures > 0 and self._clock() < self._retry_at

    def check(self) -> None:
        if self._failures and self._clock() < self._retry_at:
            wait = self._retry_at - self._clock()
            raise unavailable(
                "the budget counters (Redis) cannot be reached; the gateway refuses requests "
                f"it cannot check against their budgets (next connection attempt in "
                f"{wait:.1f} s)",
                wait,
            )

    def failed(self, exc: BaseException) -> CountersUnavailable:
        """Record a failed call; the error to raise for it."""
        self._failures += 1
        if self._failures == 1:
            log.warning(
                "Redis unreachable (%s: %s): refusing fast until it answers",
                type(exc).__name__,
                exc,
            )
        backoff = min(self._max_s, self._base_s * 2 ** min(self._failures - 1, 16))
        self._retry_at = self._clock() + backoff
        return unavailable(
            f"the budget counters (Redis) cannot be reached ({type(exc).__name__}: {exc}); "
            "the gateway refuses requests it cannot check against their budgets",
            backoff,
        )

    def succeeded(self) -> None:
        if self._failures:
            log.warning("Redis reachable again after %d failed attempt(s)", self._failures)
            self._failures = 0


class Recovery:
    """Restores this replica's leases and has the counters re-seeded (module docstring)."""

    def __init__(self, call: ScriptCaller, prefix: str, config: RecoveryConfig) -> None:
        self._call = call
        self._prefix = prefix
        self._config = config
        self.source: SeedSource | None = None  # None: nothing to seed from (a bare backend)
        # One recovery per replica at a time; the calls that were refused meanwhile wait.
        self._lock = asyncio.Lock()
        self.reseeds = 0  # how many times this replica seeded (tests, metrics)
        self.restored = 0  # leases this replica restored
        self.generation = 0  # recoveries finished on this replica

    async def recover(self, live: Mapping[str, LiveLease], seen: int) -> None:
        """Return once the counters have an epoch again; raises ``CountersUnavailable`` if
        that does not happen within ``reseed_timeout_s``. ``seen``: ``generation`` before the
        call that found them lost (a recovery that finished since covers that call too)."""
        async with self._lock:
            if self.generation != seen:
                return
            deadline = time.monotonic() + self._config.reseed_timeout_s
            await self.restore(live)
            token = secrets.token_hex(8)
            lock_ms = str(int(self._config.reseed_timeout_s * 1000))
            while True:
                verdict = _text(await self._call("claim", [self._prefix, token, lock_ms]))
                if verdict == "ok" or (verdict == "seed" and await self._seed(token)):
                    self.generation += 1
                    return
                if time.monotonic() > deadline:
                    raise unavailable(
                        "the budget counters (Redis) lost their data and are being re-seeded "
                        "from the ledger; retry shortly"
                    )
                await asyncio.sleep(_POLL_S)

    async def restore(self, live: Mapping[str, LiveLease]) -> int:
        """Write back the reservations of the leases in ``live`` that Redis no longer has."""
        leases = list(live.items())
        restored = 0
        now = repr(time.time())
        for start in range(0, len(leases), _RESTORE_BATCH):
            args: list[Any] = [self._prefix, now]
            for lease_id, (raw, expires_at) in leases[start : start + _RESTORE_BATCH]:
                args += (lease_id, raw, repr(expires_at))
            restored += int(await self._call("restore", args))
        self.restored += restored
        return restored

    async def _seed(self, token: str) -> bool:
        """Seed under our lock; False if the lock expired first (another replica seeds)."""
        try:
            counters: Sequence[SeedCounter] = ()
            if self.source is not None:
                # Let the other replicas restore their leases and their spools reach the
                # ledger database before it is read (see StateConfig.reseed_grace_s).
                await asyncio.sleep(self._config.reseed_grace_s)
                counters = await self._read_source()
            now = time.time()
            args: list[Any] = [self._prefix, token, f"{now:.3f}:{token}", repr(now)]
            for counter in counters:
                expires = repr(counter.expires_at) if counter.expires_at is not None else "0"
                args += (self._prefix + counter.key, str(counter.spent_units), expires)
            seeded = int(await self._call("seed", args)) == 1
        except BaseException:
            with contextlib.suppress(CountersUnavailable):  # else it expires on its own
                await self._call("unlock", [self._prefix, token])
            raise
        self.reseeds += seeded
        return seeded

    async def _read_source(self) -> Sequence[SeedCounter]:
        assert self.source is not None
        try:
            async with asyncio.timeout(self._config.reseed_timeout_s):
                return await self.source(time.time())
        except Exception as exc:
            raise unavailable(
                "the budget counters (Redis) lost their data and cannot be re-seeded: the "
                f"ledger could not be read ({type(exc).__name__}: {exc})"
            ) from exc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
