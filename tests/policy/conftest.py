"""Fixtures of the policy tests: both counter backends, and a clock tests move by hand."""

from __future__ import annotations

import pytest

from tests.support.state_backends import backend, key_prefix

__all__ = ["FakeClock", "backend", "key_prefix"]


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
