"""M/M/c queueing (Erlang C), shared by fleet sizing (selfhost) and autoscaling.

A replica serving ``slots`` sequences at once is modelled as ``slots`` servers, each finishing a
request in ``slots / capacity`` seconds (so a saturated replica delivers ``capacity`` req/s).
Poisson arrivals and exponential service are the textbook assumptions; LLM service times are
closer to deterministic, for which M/M/c over-states the wait (M/D/c waits about half as long),
so the sizes it gives err on the safe side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QueueStats:
    servers: int
    utilisation: float  # arrival rate / total service rate
    p_wait: float  # Erlang C: probability an arrival waits
    mean_wait_s: float
    p95_wait_s: float

    @property
    def stable(self) -> bool:
        return self.utilisation < 1


def erlang_c(servers: int, offered_load: float) -> float:
    """P(wait) in M/M/c with ``offered_load`` = λ/μ Erlangs; 1.0 when the queue is unstable.

    Erlang B by its stable recurrence B(k) = a·B(k−1) / (k + a·B(k−1)), then
    C = B / (1 − ρ·(1 − B)); no factorials, so thousands of servers are fine.
    """
    if servers < 1:
        raise ValueError("servers must be at least 1")
    if offered_load <= 0:
        return 0.0
    rho = offered_load / servers
    if rho >= 1:
        return 1.0
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered_load * blocking / (k + offered_load * blocking)
    return blocking / (1 - rho * (1 - blocking))


def mmc(
    arrival_rate: float, service_rate: float, servers: int, quantile: float = 0.95
) -> QueueStats:
    """Waiting time (before service starts) of M/M/c: mean C/(cμ−λ) and the quantile of
    P(W > t) = C·e^{−(cμ−λ)t}."""
    if service_rate <= 0:
        raise ValueError("service_rate must be positive")
    load = arrival_rate / service_rate
    utilisation = load / servers
    if utilisation >= 1:
        return QueueStats(servers, utilisation, 1.0, math.inf, math.inf)
    p_wait = erlang_c(servers, load)
    drain = servers * service_rate - arrival_rate
    tail = 1 - quantile
    p_quantile = math.log(p_wait / tail) / drain if p_wait > tail else 0.0
    return QueueStats(servers, utilisation, p_wait, p_wait / drain, p_quantile)


def replicas_needed(
    arrival_rate: float,
    capacity_rps: float,
    slots: int,
    *,
    max_utilisation: float,
    max_p95_wait_s: float | None = None,
    minimum: int = 1,
) -> int:
    """The fewest replicas (at least ``minimum``) that keep utilisation at or under
    ``max_utilisation`` and, if given, the p95 queueing wait at or under ``max_p95_wait_s``."""
    if arrival_rate <= 0:
        return minimum
    replicas = max(minimum, math.ceil(arrival_rate / (capacity_rps * max_utilisation) - 1e-12))
    if max_p95_wait_s is None:
        return replicas
    service_rate = capacity_rps / slots
    while mmc(arrival_rate, service_rate, replicas * slots).p95_wait_s > max_p95_wait_s:
        replicas += 1
    return replicas
