"""Model pinning: floating aliases (``gpt-4o``) resolved to a fixed version, and a check that
upstream really served the version asked for (an alias moving to a pricier model is an event).
"""

from __future__ import annotations

from dataclasses import dataclass

from costwarden.errors import InvalidRequest
from costwarden.policy import environments
from costwarden.policy.config import PolicyConfig
from costwarden.policy.events import PinEvent


@dataclass(frozen=True, slots=True)
class ModelResolution:
    model: str  # the model to route to
    pinned: bool  # ``model`` is a pinned version
    rewritten_from: str | None  # what the client asked for, when ``model`` differs from it
    expected_model: str | None = None  # the version upstream should report (pins, mode "off" too)


def resolve_model(config: PolicyConfig, requested: str, env: str | None) -> ModelResolution:
    """Apply the environment's model map, then pins, then the environment's allowed list."""
    if not requested:
        raise InvalidRequest("request names no model", param="model")
    rule = environments.environment_rule(config, env)
    mapped = environments.map_model(rule, requested)
    pins = config.pins
    pinned_versions = set(pins.values())
    model, pinned, expected = mapped, mapped in pinned_versions, None
    if pinned:
        expected = mapped
    elif mapped in pins:
        expected = pins[mapped]
        if config.require_pins == "reject":
            raise InvalidRequest(
                f"model {mapped!r} is a floating alias; request the pinned version "
                f"{expected!r} instead",
                param="model",
                details={"alias": mapped, "pinned_model": expected},
            )
        if config.require_pins == "rewrite":
            model, pinned = expected, True
    environments.check_allowed(env, rule, (requested, mapped, model))
    rewritten_from = requested if model != requested else None
    return ModelResolution(model, pinned, rewritten_from, expected)


def reported_model_matches(expected: str, reported: str) -> bool:
    """Providers may prefix the model (``openai/gpt-4o-2024-08-06``); the version must match."""
    return reported == expected or reported.rsplit("/", 1)[-1] == expected


def pin_mismatch(resolution: ModelResolution, reported: str | None, at: float) -> PinEvent | None:
    expected = resolution.expected_model
    if expected is None or not reported or reported_model_matches(expected, reported):
        return None
    requested = resolution.rewritten_from or resolution.model
    return PinEvent(requested=requested, expected=expected, reported=reported, at=at)
