"""Gateway fixtures for the savings stages: the gateway tests' real gateway and fake upstream,
with a ``savings:`` section (and anything else) added to the settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from costwarden.config import Settings, settings_from_dict
from tests.gateway.conftest import (
    RunningGateway,
    StartGateway,
    base_settings,
    key_prefix,
    model,
    start_gateway,
    upstream,
)

__all__ = [
    "RunningGateway",
    "StartGateway",
    "key_prefix",
    "model",
    "savings_settings",
    "start_gateway",
    "upstream",
]


def savings_settings(
    tmp_path: Path, models: list[dict[str, Any]], savings: dict[str, Any], **sections: Any
) -> Settings:
    """``base_settings`` plus ``savings`` and any other top-level sections (policy, state)."""
    data = base_settings(tmp_path, models).model_dump(mode="json")
    data["savings"] = savings
    data.update(sections)
    return settings_from_dict(data)
