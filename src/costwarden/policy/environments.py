"""Environment rules: what the ``env`` tag may call, and where its models are sent."""

from __future__ import annotations

from costwarden.errors import PermissionDenied
from costwarden.policy.config import EnvRule, PolicyConfig


def environment_rule(config: PolicyConfig, env: str | None) -> EnvRule | None:
    return config.environments.get(env) if env is not None else None


def map_model(rule: EnvRule | None, requested: str) -> str:
    """The model this environment sends ``requested`` to (e.g. gpt-4o → a local model in dev)."""
    if rule is None:
        return requested
    return rule.model_map.get(requested, requested)


def check_allowed(env: str | None, rule: EnvRule | None, names: tuple[str, ...]) -> None:
    """Allowed if any name the request goes by (as asked, mapped, pinned) is on the list."""
    if rule is None or rule.allowed_models is None:
        return
    if any(name in rule.allowed_models for name in names):
        return
    allowed = list(rule.allowed_models)
    raise PermissionDenied(
        f"model {names[0]!r} is not allowed in environment {env!r} "
        f"(allowed: {', '.join(allowed) or 'none'})",
        param="model",
        details={"environment": env, "model": names[0], "allowed_models": allowed},
    )
