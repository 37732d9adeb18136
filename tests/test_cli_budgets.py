"""``costwarden budgets``: set / list / delete against a real SQLite ledger, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from costwarden.cli import main


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "costwarden.yaml"
    path.write_text(yaml.safe_dump({"ledger": {"sqlite_path": str(tmp_path / "ledger.db")}}))
    return str(path)


def run(config: str, *args: str) -> int:
    return main(["budgets", *args, "--config", config])


def listed(config: str, capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    capsys.readouterr()
    assert run(config, "list", "--format", "json") == 0
    result: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return result


def test_set_list_and_delete(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    ml = ["set", "ml", "--limit-usd", "0.10", "--scope", "team=ml", "--scope", "model=gpt-4o"]
    assert run(config, *ml, "--period", "week", "--thresholds", "90,50") == 0
    assert run(config, "set", "each-user", "--limit-usd", "25", "--scope", "user=*") == 0
    assert listed(config, capsys) == [
        {
            "name": "each-user",
            "scope": {"user": "*"},
            "period": "month",
            "limit_usd": "25",
            "soft_thresholds": [50, 80, 100],
        },
        {
            "name": "ml",
            "scope": {"model": "gpt-4o", "team": "ml"},
            "period": "week",
            "limit_usd": "0.10",
            "soft_thresholds": [50, 90],
        },
    ]
    assert run(config, "set", "ml", "--limit-usd", "0.2", "--scope", "team=ml") == 0  # replaces
    assert listed(config, capsys)[1] == {
        "name": "ml",
        "scope": {"team": "ml"},
        "period": "month",
        "limit_usd": "0.2",
        "soft_thresholds": [50, 80, 100],
    }
    assert run(config, "delete", "ml") == 0
    assert run(config, "delete", "ml") == 1
    assert "no runtime budget named ml" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--limit-usd", "0"], "limit_usd: Input should be greater than 0"),
        (["--limit-usd", "1", "--scope", "colour=red"], "scope.colour"),
        (["--limit-usd", "1", "--scope", "team"], "--scope takes DIM=VALUE"),
        (["--limit-usd", "1", "--thresholds", "50,120"], "soft_thresholds are percentages"),
    ],
)
def test_bad_budgets_are_refused_with_the_reason(
    config: str, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert run(config, "set", "x", *args) == 2
    assert message in capsys.readouterr().err
    assert run(config, "list") == 0
    assert capsys.readouterr().out == ""  # nothing was stored


def test_bad_amount_is_an_argument_error(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run(config, "set", "x", "--limit-usd", "ten")
    assert exited.value.code == 2
    assert "not a decimal amount: 'ten'" in capsys.readouterr().err


def test_the_installed_command_sets_and_lists(config: str) -> None:
    command = [sys.executable, "-m", "costwarden", "budgets"]
    subprocess.run([*command, "set", "org", "--limit-usd", "1000", "--config", config], check=True)
    listed = subprocess.run(
        [*command, "list", "--config", config], check=True, capture_output=True, text=True
    )
    assert listed.stdout == "org\tglobal\tmonth\t1000\t50,80,100\n"
