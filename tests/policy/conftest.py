"""Fixtures of the policy tests: both counter backends, a clock tests move by hand, an event
sink to read what the engine reported, and ``make`` for an engine over all three."""

from __future__ import annotations

from typing import Any

import pytest

from costwarden.policy.config import PolicyConfig
from costwarden.policy.engine import PolicyEngine
from costwarden.policy.events import MemoryEventSink
from costwarden.state.base import StateBackend
from tests.support.state_backends import backend, key_prefix

__all__ = ["FakeClock", "backend", "key_prefix", "make"]


class FakeClock:
    """Epoch seconds that only move when a test moves them."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_795_000_000.0)  # 2026-11-18, a Wednesday


@pytest.fixture
def sink() -> MemoryEventSink:
    return MemoryEventSink()


def make(
    backend: StateBackend, clock: FakeClock, sink: MemoryEventSink, **config: Any
) -> PolicyEngine:
    return PolicyEngine(PolicyConfig(**config), backend, clock, events=sink)
