"""``distill export`` (SQLite and PostgreSQL): a feature's unexpired pairs become a valid
OpenAI chat fine-tuning JSONL, deduplicated (the newest answer to a prompt wins), redacted
with today's rules, split into train and validation, with tokens, training cost and the
planner's break-even in the summary. Invalid lines are caught by the validator."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
import yaml

from costwarden.cli import main
from costwarden.config import LedgerConfig
from costwarden.distill.export import InvalidTrainingFile, check_example, validate_file
from costwarden.distill.storage import open_pair_store
from costwarden.ledger import Store, row_from_record
from costwarden.pricing import TokenCounter
from costwarden.records import Tags, TokenUsage
from tests.distill.support import make_pair
from tests.ledger.factory import make_record

NOW = datetime.now(UTC).replace(microsecond=0)
TOPICS = [
    *("invoice", "receipt", "order", "parcel", "refund", "card", "account", "password"),
    *("login", "address", "plan"),
]


async def _seed(store: Store, config: LedgerConfig) -> None:
    """11 distinct prompts (one of them asked three times), one expired, one other feature."""
    stored = [
        make_pair(i, "triage", at=NOW - timedelta(hours=i + 1), question=f"My {t} is wrong")
        for i, t in enumerate(TOPICS)
    ]
    # Stored unredacted (captured before the email rule): the export redacts it.
    stored[-1] = make_pair(99, "triage", at=NOW, question="My plan is wrong: bob@example.com")
    stored += [
        make_pair(
            100 + i,
            "triage",
            at=NOW - timedelta(days=2 + i),
            question="My invoice is wrong",
            answer=f"Older answer {i} for ann@example.com",  # stored before an email rule
        )
        for i in range(2)
    ]
    stored.append(make_pair(200, "triage", at=NOW - timedelta(days=40), question="Expired one"))
    stored.append(make_pair(300, "sales", at=NOW - timedelta(hours=1), question="Other feature"))
    pairs = await open_pair_store(config)
    try:
        await pairs.insert(stored)
    finally:
        await pairs.close()
    records = [
        make_record(
            i,
            model="gpt-4o",
            cost=Decimal("0.003"),
            created_at=NOW - timedelta(hours=i + 1),
            tags=Tags(feature="triage"),
            usage=TokenUsage(input_tokens=1000, output_tokens=50),
        )
        for i in range(30)
    ]
    await store.insert_rows([row_from_record(r) for r in records])


def _config_file(tmp_path: Path, ledger: LedgerConfig) -> Path:
    path = tmp_path / "costwarden.yaml"
    capture = {"features": {"triage": {"redact": ["email"]}}}  # capture itself stays off
    data = {"ledger": ledger.model_dump(mode="json"), "distill": {"capture": capture}}
    path.write_text(yaml.safe_dump(data))
    return path


def _read(path: Path) -> list[list[dict[str, str]]]:
    lines = path.read_bytes().splitlines()
    for line in lines:
        check_example(orjson.loads(line))
    return [orjson.loads(line)["messages"] for line in lines]


async def test_export_writes_a_valid_deduplicated_redacted_training_file(
    ledger_store: Store,
    ledger_config: LedgerConfig,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await _seed(ledger_store, ledger_config)
    out = tmp_path / "out" / "train.jsonl"
    argv = ["distill", "export", "--config", str(_config_file(tmp_path, ledger_config))]
    argv += ["--feature", "triage", "-o", str(out), "--validation-share", "0.2"]
    argv += ["--since", (NOW - timedelta(days=30)).isoformat(), "--until", NOW.isoformat()]
    assert await asyncio.to_thread(main, [*argv, "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    train, validation = _read(out), _read(tmp_path / "out" / "train.validation.jsonl")
    assert (len(train), len(validation)) == (9, 2)  # 11 distinct prompts, 20 % held out
    examples = train + validation
    questions = sorted(m[1]["content"] for m in examples)
    expected = [f"My {t} is wrong" for t in TOPICS[:-1]] + ["My plan is wrong: [EMAIL]"]
    assert questions == sorted(expected)
    invoice = next(m for m in examples if m[1]["content"] == "My invoice is wrong")
    assert invoice[2] == {"role": "assistant", "content": "Billing."}  # the newest answer
    written = out.read_text() + (out.parent / "train.validation.jsonl").read_text()
    assert "@example.com" not in written
    assert summary["duplicates_dropped"] == 2
    tokens = TokenCounter()
    counted = sum(tokens.estimate_chat("gpt-4o-mini", m) for m in train)
    assert summary["train"] == {"path": str(out), "examples": 9, "tokens": counted}
    cost = Decimal(counted * 3 * 3) / 1_000_000
    assert Decimal(summary["training_cost"]) == cost
    # 30 requests at $0.003 on gpt-4o vs the same tokens on the fine-tuned target, a rate over
    # the days since the first one's day began
    first_day = datetime.combine((NOW - timedelta(hours=30)).date(), time(), UTC)
    days = Decimal((NOW - first_day).total_seconds()) / 86400
    saving = (Decimal("0.09") - 30 * Decimal("0.00036")) * Decimal("30.436875") / days
    assert Decimal(summary["monthly_saving"]) == saving.quantize(Decimal("0.000001"))
    break_even = Decimal(summary["break_even"]["days"])
    assert abs(break_even - cost / saving * Decimal("30.436875")) <= Decimal("0.0000005")
    assert summary["break_even"]["tuned_per_query"] == "0.00036"
    assert await asyncio.to_thread(main, argv) == 0  # the text summary
    text = capsys.readouterr().out
    assert "wrote 9 training examples" in text and "break-even:" in text


async def test_a_feature_with_no_pairs_exports_nothing(
    ledger_store: Store,
    ledger_config: LedgerConfig,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "train.jsonl"
    argv = ["distill", "export", "--config", str(_config_file(tmp_path, ledger_config))]
    assert await asyncio.to_thread(main, [*argv, "--feature", "triage", "-o", str(out)]) == 1
    assert "no captured pairs" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"{not json", "unexpected"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "at least"),
        (
            b'{"messages": [{"role": "bot", "content": "a"}, {"role": "user", "content": "b"}]}',
            "role",
        ),
        (
            b'{"messages": [{"role": "assistant", "content": "a"}, '
            b'{"role": "user", "content": "b"}]}',
            "end with the assistant",
        ),
        (b'{"messages": [], "extra": 1}', "only 'messages'"),
    ],
)
def test_the_validator_rejects_what_fine_tuning_would(
    tmp_path: Path, line: bytes, problem: str
) -> None:
    path = tmp_path / "bad.jsonl"
    good = (
        b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}'
    )
    path.write_bytes(good + b"\n" + line + b"\n")
    with pytest.raises(InvalidTrainingFile, match=problem) as raised:
        validate_file(path)
    assert ":2:" in str(raised.value)
