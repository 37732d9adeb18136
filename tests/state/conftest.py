"""Fixtures of the state tests: each test runs on both counter backends."""

from __future__ import annotations

from tests.support.state_backends import backend, key_prefix

__all__ = ["backend", "key_prefix"]
