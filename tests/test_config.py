"""Settings: YAML + environment, validated once at start-up with clear errors."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from costwarden.config import load_settings, settings_from_dict
from costwarden.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "costwarden.example.yaml"


def test_the_shipped_example_config_loads() -> None:
    settings = load_settings(EXAMPLE, environ={})
    llama = settings.model("llama-3.1-70b")
    assert llama is not None and llama.pricing.self_hosted is not None
    assert llama.pricing.self_hosted.utilisation == Decimal("0.55")
    assert settings.policy.pins == {"gpt-4o": "gpt-4o-2024-08-06"}
    assert [e.name for e in llama.endpoints] == ["spot-a", "spot-b"]


def test_env_references_are_substituted(tmp_path: Path) -> None:
    path = tmp_path / "cw.yaml"
    path.write_text(
        "ledger: {backend: postgres, postgres_dsn: '${PG_DSN}'}\ngateway:\n  port: ${PORT:-4321}\n"
    )
    settings = load_settings(path, environ={"PG_DSN": "postgresql://db/costs"})
    assert settings.ledger.postgres_dsn == "postgresql://db/costs"
    assert settings.gateway.port == 4321
    with pytest.raises(ConfigError, match="PG_DSN"):
        load_settings(path, environ={})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"models": [{"name": "a", "endpoints": []}]}, "no endpoints"),
        (
            {
                "models": [
                    {"name": "a", "endpoints": [{"api_base": "http://x"}], "fallbacks": ["b"]}
                ]
            },
            "unknown models",
        ),
        ({"ledger": {"backend": "postgres"}}, "postgres_dsn"),
        (
            {
                "models": [
                    {
                        "name": "a",
                        "endpoints": [{"api_base": "http://x"}],
                        "pricing": {"mode": "self_hosted"},
                    }
                ]
            },
            "self_hosted",
        ),
        ({"policy": {"pins": {"gpt-4o": "gpt-4o-2024-08-06"}}}, "not configured"),
        ({"gateway": {"prot": 1}}, "prot"),
    ],
)
def test_bad_config_fails_at_start_with_a_clear_message(data: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=message):
        settings_from_dict(data)
