"""Which adapter speaks which provider's wire protocol.

A registry instance maps provider names to adapters; ``default_registry()`` holds the built-in
ones and a deployment can ``register`` more (a new wire protocol is one class, no edits here).
Adapters hold no per-request state, so one instance per provider serves every request.
"""

from __future__ import annotations

from types import MappingProxyType

from costwarden.errors import ConfigError
from costwarden.providers.anthropic import AnthropicAdapter
from costwarden.providers.base import ProviderAdapter
from costwarden.providers.openai import OpenAIAdapter


class AdapterRegistry:
    def __init__(self, adapters: tuple[ProviderAdapter, ...] = ()) -> None:
        self._adapters: dict[str, ProviderAdapter] = {}
        for adapter in adapters:
            self.register(adapter)

    def register(self, adapter: ProviderAdapter) -> None:
        if adapter.name in self._adapters:
            raise ConfigError(f"an adapter for provider {adapter.name!r} is already registered")
        self._adapters[adapter.name] = adapter

    def get(self, provider: str) -> ProviderAdapter:
        adapter = self._adapters.get(provider)
        if adapter is None:
            known = ", ".join(sorted(self._adapters))
            raise ConfigError(f"no adapter for provider {provider!r} (known: {known})")
        return adapter

    @property
    def providers(self) -> frozenset[str]:
        return frozenset(self._adapters)


def default_registry() -> AdapterRegistry:
    return AdapterRegistry((OpenAIAdapter(), AnthropicAdapter()))


# Read-only: the built-in adapters are stateless, so sharing them is safe.
_BUILTIN = MappingProxyType({a.name: a for a in (OpenAIAdapter(), AnthropicAdapter())})


def adapter_for(provider: str) -> ProviderAdapter:
    adapter = _BUILTIN.get(provider)
    if adapter is None:
        raise ConfigError(f"no adapter for provider {provider!r} (known: {', '.join(_BUILTIN)})")
    return adapter
