"""The gateway tests' real gateway and fake upstream, for capture through the gateway."""

from __future__ import annotations

from tests.gateway.conftest import key_prefix, start_gateway, upstream

__all__ = ["key_prefix", "start_gateway", "upstream"]
