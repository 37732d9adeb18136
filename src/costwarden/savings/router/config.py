"""Typed settings of the learned router (``savings.routers``).

A router is a virtual model name: a client asks for it (``"model": "auto"``) and the gateway
sends the request to the configured ``weak`` or ``strong`` model, as the router trained by
``costwarden router train`` decides from the prompt. Kept free of numpy / the stage's imports
(like ``savings.config``), so ``costwarden.config`` can include it cheaply; that ``weak`` and
``strong`` are configured models is checked by ``check_router_models`` where models are known.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RouterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("auto", min_length=1)  # the virtual model clients ask for
    weak: str  # a configured model: the default answerer
    strong: str  # a configured model: called when the router says it is worth it
    artifact: Path  # ``<stem>``, ``<stem>.npz`` or ``<stem>.json`` from ``router train``
    # None: the artifact's threshold (calibrated on its training rows for its strong share).
    # Higher sends fewer prompts strong; the score is P(strong right) - P(weak right).
    threshold: float | None = Field(None, ge=-1.0, le=1.0)

    @model_validator(mode="after")
    def _distinct(self) -> RouterConfig:
        if self.weak == self.strong:
            raise ValueError("a router's weak and strong models must differ")
        if self.name in (self.weak, self.strong):
            raise ValueError(f"router name '{self.name}' must not be one of its models")
        return self


def check_router_models(
    routers: tuple[RouterConfig, ...], provider_of: Callable[[str], str | None]
) -> None:
    """Names are unique and hide no configured model; both models of each router are
    configured and of one protocol (``provider_of``), since either gets the client's body as
    it came. Raises ValueError (a start-up failure)."""
    names = [r.name for r in routers]
    if len(set(names)) != len(names):
        raise ValueError(f"router names must be unique: {names}")
    for router in routers:
        if provider_of(router.name) is not None:
            raise ValueError(f"router {router.name!r} has the name of a configured model")
        protocols = {model: provider_of(model) for model in (router.weak, router.strong)}
        unknown = [model for model, protocol in protocols.items() if protocol is None]
        if unknown:
            raise ValueError(f"router {router.name!r} names unconfigured models {unknown}")
        if len(set(protocols.values())) > 1:
            raise ValueError(f"router {router.name!r} mixes protocols {protocols}")
