"""Which endpoint serves the next attempt: weighted load balancing with passive health ejection.

Health is learned from real traffic only (no probes): an endpoint that fails
``failures_to_eject`` times in a row (connection errors, timeouts, 5xx) is ejected for
``eject_seconds``, doubling while it keeps failing once back. A success resets it. When every
endpoint of a model is ejected the one due back soonest is still tried — refusing outright
would turn a blip into an outage. This state is a per-replica optimisation, never needed for
correctness, so it may live in process memory.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from costwarden.config import EndpointConfig, HealthConfig, ModelConfig, Settings


@dataclass(slots=True)
class EndpointHealth:
    consecutive_failures: int = 0
    ejections: int = 0
    ejected_until: float = 0.0

    def available(self, now: float) -> bool:
        return now >= self.ejected_until


@dataclass(slots=True)
class Target:
    """One (model, endpoint) pair an attempt can go to."""

    model: ModelConfig
    endpoint: EndpointConfig
    health: EndpointHealth = field(default_factory=EndpointHealth)


class Router:
    """Plans the sequence of targets for a request: the model's endpoints, then fallbacks."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._health_cfg: HealthConfig = settings.gateway.health
        self._clock = clock
        self._rng = rng or random.Random()
        self._targets: dict[str, list[Target]] = {
            m.name: [Target(m, ep) for ep in m.endpoints] for m in settings.models
        }
        self._fallbacks = {m.name: m.fallbacks for m in settings.models}

    def targets(self, model: str) -> list[Target]:
        return self._targets[model]

    def fallbacks(self, model: str) -> tuple[str, ...]:
        return self._fallbacks.get(model, ())

    def plan(self, model: str) -> Iterator[Target]:
        """Targets to try in order: healthy endpoints of the model (weighted order), then of
        each fallback model; unhealthy ones only after all healthy ones, soonest-back first."""
        chain = (model, *self._fallbacks.get(model, ()))
        now = self._clock()
        healthy: list[Target] = []
        ejected: list[Target] = []
        for name in chain:
            ready = [t for t in self._targets[name] if t.health.available(now)]
            healthy.extend(self._weighted_order(ready))
            ejected.extend(t for t in self._targets[name] if not t.health.available(now))
        ejected.sort(key=lambda t: t.health.ejected_until)
        yield from healthy
        yield from ejected

    def _weighted_order(self, targets: Sequence[Target]) -> list[Target]:
        """A random order where each target's chance of going first is proportional to weight."""
        if len(targets) <= 1:
            return list(targets)
        # Efraimidis-Spirakis: sort by u^(1/w); one pass, no rejection loop.
        keyed = [(self._rng.random() ** (1.0 / max(t.endpoint.weight, 1)), t) for t in targets]
        keyed.sort(key=lambda kv: kv[0], reverse=True)
        return [t for _, t in keyed]

    def record_success(self, target: Target) -> None:
        health = target.health
        health.consecutive_failures = 0
        health.ejections = 0

    def record_failure(self, target: Target) -> None:
        health = target.health
        health.consecutive_failures += 1
        if health.consecutive_failures >= self._health_cfg.failures_to_eject:
            backoff = self._health_cfg.eject_seconds * (2 ** min(health.ejections, 6))
            health.ejected_until = self._clock() + backoff
            health.ejections += 1
            health.consecutive_failures = 0
