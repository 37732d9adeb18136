"""Policy configuration is validated up front, with messages that say what is wrong."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from costwarden.policy.config import BudgetRule, PolicyConfig, RateLimitRule, StateConfig


def test_a_full_policy_parses_from_plain_data():
    config = PolicyConfig.model_validate(
        {
            "timezone": "Europe/Berlin",
            "budgets": [
                {"scope": "global", "period": "month", "limit_usd": "5000"},
                {"scope": {"team": "ml", "model": "gpt-4o"}, "period": "day", "limit_usd": 20},
                {"scope": {"user": "*"}, "period": "week", "limit_usd": "1.5"},
            ],
            "rate_limits": [{"scope": {"key": "*"}, "rpm": 60, "tpm": 100000}],
            "breakers": {
                "session": {"max_steps": 50, "loop_repeat_k": 5},
                "velocity": {"usd_per_minute": "2"},
            },
            "pins": {"gpt-4o": "gpt-4o-2024-08-06"},
            "require_pins": "reject",
            "environments": {
                "dev": {
                    "allowed_models": ["local-llama"],
                    "model_map": {"gpt-4o": "local-llama"},
                    "budgets": [{"period": "day", "limit_usd": 10}],
                }
            },
        }
    )
    assert config.budgets[0].scope == {}
    assert config.budgets[2].limit_usd == Decimal("1.5")
    assert config.budgets[1].soft_thresholds == (50, 80, 100)
    env_budget = config.all_budgets()[-1]
    assert env_budget.scope == {"env": "dev"} and env_budget.limit_usd == 10
    assert config.budgets[1].label() == "model=gpt-4o,team=ml/day"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown IANA timezone"),
        ({"budgets": [{"limit_usd": 0}]}, "greater than 0"),
        ({"budgets": [{"limit_usd": 1, "scope": {"team": ""}}]}, "needs a value"),
        ({"budgets": [{"limit_usd": 1, "scope": {"region": "eu"}}]}, "region"),
        ({"budgets": [{"limit_usd": 1, "soft_thresholds": [150]}]}, "percentages"),
        ({"budgets": [{"limit_usd": 10**9}]}, "less than or equal"),
        ({"rate_limits": [{"scope": {"key": "*"}}]}, "rpm, tpm or both"),
        ({"environments": {"dev": {"budgets": [{"limit_usd": 1, "scope": {"env": "x"}}]}}}, "env"),
        ({"require_pins": "sometimes"}, "require_pins"),
        ({"unknown": 1}, "Extra inputs"),
    ],
)
def test_invalid_policies_are_refused(data, fragment):
    with pytest.raises(ValidationError, match=fragment):
        PolicyConfig.model_validate(data)


def test_rules_and_state_config_are_frozen():
    rule = BudgetRule(limit_usd=Decimal(1))
    with pytest.raises(ValidationError):
        rule.limit_usd = Decimal(2)  # type: ignore[misc]
    assert RateLimitRule(rpm=1).scope == {}
    assert StateConfig().backend == "memory"
    with pytest.raises(ValidationError, match="braces"):
        StateConfig(key_prefix="{cw}")
