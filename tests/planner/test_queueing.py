"""Erlang C against textbook values and a discrete-event M/M/c simulation."""

from __future__ import annotations

import heapq
import math

import numpy as np
import pytest

from costwarden.planner.queueing import erlang_c, mmc, replicas_needed


def test_erlang_c_textbook_values() -> None:
    # M/M/1: P(wait) = ρ.
    assert erlang_c(1, 0.5) == pytest.approx(0.5)
    # c = 2, a = 1 Erlang: B(1) = 1/2, B(2) = (1·½)/(2 + ½) = 1/5, C = (1/5)/(1 − ½·4/5) = 1/3.
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    # c = 3, a = 2.4: B = 0.70588, 0.45860, 0.26841; C = 0.26841/(1 − 0.8·0.73159) = 0.64719.
    assert erlang_c(3, 2.4) == pytest.approx(0.64719, abs=1e-5)
    assert erlang_c(4, 0.0) == 0.0
    assert erlang_c(2, 2.0) == 1.0  # ρ = 1: unstable


def test_mmc_waits() -> None:
    # M/M/1 with λ = 0.8, μ = 1: Wq = ρ/(μ − λ) = 4; p95 = ln(0.8/0.05)/(1 − 0.8) = ln 16 / 0.2.
    one = mmc(0.8, 1.0, 1)
    assert one.mean_wait_s == pytest.approx(4.0)
    assert one.p95_wait_s == pytest.approx(math.log(16) / 0.2)
    # c = 3, λ = 2.4, μ = 1: Wq = 0.64719 / (3 − 2.4) = 1.07865.
    assert mmc(2.4, 1.0, 3).mean_wait_s == pytest.approx(1.07865, abs=1e-4)
    # P(wait) below 5 %: the p95 wait is zero.
    assert mmc(0.1, 1.0, 4).p95_wait_s == 0.0
    assert not mmc(3.0, 1.0, 3).stable


def _simulated_wait(rate: float, service: float, servers: int, customers: int) -> float:
    rng = np.random.default_rng(7)
    arrivals = np.cumsum(rng.exponential(1 / rate, customers))
    services = rng.exponential(1 / service, customers)
    free = [0.0] * servers
    waits = np.empty(customers)
    for index, (arrive, duration) in enumerate(zip(arrivals, services, strict=True)):
        start = max(arrive, heapq.heappop(free))
        waits[index] = start - arrive
        heapq.heappush(free, start + duration)
    return float(waits[customers // 10 :].mean())  # skip the empty-system warm-up


def test_erlang_c_matches_a_discrete_event_simulation() -> None:
    closed = mmc(2.4, 1.0, 3).mean_wait_s
    assert _simulated_wait(2.4, 1.0, 3, 200_000) == pytest.approx(closed, rel=0.06)


def test_replicas_needed() -> None:
    # ceil(12 / (5 · 0.8)) = 3 replicas by utilisation alone.
    assert replicas_needed(12, 5, 10, max_utilisation=0.8) == 3
    assert replicas_needed(0, 5, 10, max_utilisation=0.8, minimum=2) == 2
    # slots = 1, λ = 4, μ = 5: one replica has p95 wait ln(16)/1 = 2.77 s > 1.8 s; two have
    # C = 8/35 and p95 = ln((8/35)/0.05)/(10 − 4) = 0.2533 s.
    assert replicas_needed(4, 5, 1, max_utilisation=0.8, max_p95_wait_s=1.8) == 2
