"""Build the configured counter backend (the gateway calls this once at start-up)."""

from __future__ import annotations

from costwarden.policy.config import StateConfig
from costwarden.state.base import StateBackend
from costwarden.state.memory import MemoryStateBackend
from costwarden.state.redis import RedisStateBackend
from costwarden.state.redis_recovery import RecoveryConfig


def build_state_backend(config: StateConfig) -> StateBackend:
    if config.backend == "redis":
        recovery = RecoveryConfig(
            on_unavailable=config.on_unavailable,
            reseed_grace_s=config.reseed_grace_s,
            reseed_timeout_s=config.reseed_timeout_s,
        )
        return RedisStateBackend.from_url(
            config.redis_url, config.key_prefix, config.redis_max_connections, recovery
        )
    return MemoryStateBackend()
