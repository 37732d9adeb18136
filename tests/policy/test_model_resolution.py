"""Pins, environment model maps and allowed lists decide which model a request may use."""

from __future__ import annotations

import pytest

from costwarden.errors import InvalidRequest, PermissionDenied
from costwarden.policy.config import EnvRule, PolicyConfig
from costwarden.policy.engine import PolicyEngine
from costwarden.policy.events import MemoryEventSink, PinEvent
from costwarden.state.memory import MemoryStateBackend

PINS = {"gpt-4o": "gpt-4o-2024-08-06"}


def engine(sink: MemoryEventSink | None = None, **config) -> PolicyEngine:
    return PolicyEngine(PolicyConfig(**config), MemoryStateBackend(), lambda: 0.0, events=sink)


def test_rewrite_mode_sends_the_pinned_version():
    resolution = engine(pins=PINS, require_pins="rewrite").resolve_model("gpt-4o", None)
    assert resolution.model == "gpt-4o-2024-08-06"
    assert resolution.pinned and resolution.rewritten_from == "gpt-4o"


def test_reject_mode_refuses_the_floating_alias_and_names_the_version():
    policy = engine(pins=PINS, require_pins="reject")
    with pytest.raises(InvalidRequest, match="gpt-4o-2024-08-06") as caught:
        policy.resolve_model("gpt-4o", None)
    assert caught.value.param == "model"
    pinned = policy.resolve_model("gpt-4o-2024-08-06", None)
    assert pinned.pinned and pinned.rewritten_from is None


def test_off_mode_passes_the_alias_but_still_knows_the_expected_version():
    resolution = engine(pins=PINS, require_pins="off").resolve_model("gpt-4o", None)
    assert resolution.model == "gpt-4o" and not resolution.pinned
    assert resolution.expected_model == "gpt-4o-2024-08-06"


def test_unpinned_models_pass_through():
    resolution = engine(pins=PINS).resolve_model("claude-sonnet-4", None)
    assert resolution.model == "claude-sonnet-4"
    assert not resolution.pinned and resolution.expected_model is None


def test_reported_model_mismatch_is_an_event():
    sink = MemoryEventSink()
    policy = engine(sink, pins=PINS)
    resolution = policy.resolve_model("gpt-4o", None)
    assert policy.check_reported_model(resolution, "gpt-4o-2024-08-06")
    assert policy.check_reported_model(resolution, "openai/gpt-4o-2024-08-06")
    assert not policy.check_reported_model(resolution, "gpt-4o-2024-11-20")
    assert list(sink.events) == [
        PinEvent("gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-2024-11-20", at=0.0)
    ]


def test_environment_maps_models_to_local_ones_and_enforces_its_allowed_list():
    environments = {
        "dev": EnvRule(
            allowed_models=("local-llama", "gpt-4o-mini"), model_map={"gpt-4o": "local-llama"}
        )
    }
    policy = engine(environments=environments, pins=PINS)
    mapped = policy.resolve_model("gpt-4o", "dev")
    assert mapped.model == "local-llama" and mapped.rewritten_from == "gpt-4o"
    assert not mapped.pinned
    assert policy.resolve_model("gpt-4o-mini", "dev").model == "gpt-4o-mini"
    with pytest.raises(PermissionDenied, match="not allowed in environment 'dev'") as caught:
        policy.resolve_model("o1", "dev")
    assert caught.value.details["allowed_models"] == ["local-llama", "gpt-4o-mini"]
    # Other environments, and requests without one, follow the global rules only.
    assert policy.resolve_model("o1", "prod").model == "o1"
    assert policy.resolve_model("gpt-4o", None).model == "gpt-4o-2024-08-06"


def test_a_request_without_a_model_is_invalid():
    with pytest.raises(InvalidRequest, match="no model"):
        engine().resolve_model("", None)
