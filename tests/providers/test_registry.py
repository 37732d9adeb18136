"""Adapter lookup by provider name."""

from __future__ import annotations

import pytest

from costwarden.errors import ConfigError
from costwarden.providers.anthropic import AnthropicAdapter
from costwarden.providers.base import CHAT, MESSAGES
from costwarden.providers.openai import OpenAIAdapter
from costwarden.providers.registry import AdapterRegistry, adapter_for, default_registry


def test_builtin_adapters() -> None:
    assert isinstance(adapter_for("openai"), OpenAIAdapter)
    assert isinstance(adapter_for("anthropic"), AnthropicAdapter)
    assert adapter_for("openai") is adapter_for("openai")  # stateless, shared
    assert CHAT in adapter_for("openai").apis
    assert adapter_for("anthropic").apis == {MESSAGES}


def test_unknown_provider() -> None:
    with pytest.raises(ConfigError, match="bedrock"):
        adapter_for("bedrock")


def test_registry_instances_take_plugins() -> None:
    class LocalAnthropic(AnthropicAdapter):
        name = "local-anthropic"

    registry = default_registry()
    registry.register(LocalAnthropic())
    assert registry.providers == {"openai", "anthropic", "local-anthropic"}
    assert isinstance(registry.get("local-anthropic"), LocalAnthropic)
    with pytest.raises(ConfigError, match="already registered"):
        registry.register(OpenAIAdapter())
    with pytest.raises(ConfigError, match="known: "):
        AdapterRegistry().get("openai")
