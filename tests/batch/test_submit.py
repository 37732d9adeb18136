"""Batch input files, the results format, batch prices, and the ``costwarden batch`` CLI."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from costwarden.batch.models import ItemView
from costwarden.batch.pricing import BatchPricer
from costwarden.batch.submit import output_line, parse_lines
from costwarden.cli import main
from costwarden.config import settings_from_dict
from costwarden.pricing import PriceBook
from costwarden.records import TokenUsage
from tests.batch.conftest import MODEL, chat_body, worker_settings


def jsonl(*lines: object) -> list[bytes]:
    return [orjson.dumps(line) for line in lines]


def test_reads_openai_batch_lines_and_plain_bodies() -> None:
    batch_line = {
        "custom_id": "a",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": chat_body(),
    }
    parsed = parse_lines(jsonl(batch_line, chat_body(), {**chat_body(), "stream": False}))
    assert (parsed.model, parsed.api) == (MODEL, "chat.completions")
    assert [i.custom_id for i in parsed.items] == ["a", "request-2", "request-3"]
    assert "stream" not in parsed.items[2].body
    other = parse_lines(jsonl({"model": "x", "input": "hi"}), model="text-embedding-3-small")
    assert other.api == "embeddings" and other.items[0].body["model"] == "text-embedding-3-small"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([b"{not json"], "line 1:"),
        (jsonl(chat_body(), {**chat_body(), "stream": True}), "line 2: batch requests are not"),
        (jsonl({"custom_id": "a", "url": "/v1/other", "body": {}}), "url must be one of"),
        (jsonl({**chat_body(), "messages": []}), "'messages' must not be empty"),
        (jsonl(chat_body(), {**chat_body(), "model": "gpt-4o"}), "one job is one model"),
        (jsonl(chat_body(), {"model": MODEL, "input": "x"}), "one job is one API"),
        ([b"", b"  "], "the file has no requests"),
    ],
)
def test_refuses_a_bad_file_whole(lines: list[bytes], message: str) -> None:
    with pytest.raises(ValueError, match="the batch file is not valid") as caught:
        parse_lines(lines)
    assert message in str(caught.value)


def test_results_lines_use_openai_batch_output_format() -> None:
    done = ItemView(
        "bi_1",
        "bj",
        1,
        "a",
        "done",
        1,
        200,
        '{"object":"chat.completion"}',
        None,
        "cwb-1-1",
        Decimal("0.1"),
    )
    failed = ItemView(
        "bi_2",
        "bj",
        2,
        "b",
        "failed",
        3,
        503,
        None,
        '{"code":"upstream_error","message":"overloaded"}',
        "cwb-2-3",
        None,
    )
    first, second = orjson.loads(output_line(done)), orjson.loads(output_line(failed))
    assert first == {
        "id": "batch_req_1",
        "custom_id": "a",
        "error": None,
        "response": {
            "status_code": 200,
            "request_id": "cwb-1-1",
            "body": {"object": "chat.completion"},
        },
    }
    assert second["response"] is None and second["error"]["code"] == "upstream_error"


def test_batch_price_falls_back_to_the_configured_discount() -> None:
    settings = settings_from_dict(
        {
            "batch": {"batch_api": {"discount_pct": {"openai": "40"}}},
            "models": [
                {
                    "name": "mine",
                    "endpoints": [{"api_base": "http://127.0.0.1:9/v1"}],
                    "pricing": {
                        "mode": "custom",
                        "custom": [{"input_per_mtok": "10", "output_per_mtok": "20"}],
                    },
                }
            ],
        }
    )
    model = settings.models[0]
    pricer = BatchPricer(PriceBook(settings), settings.batch.batch_api)
    price = pricer.batch_api(model, model.endpoints[0], datetime.now(UTC))
    assert price is not None and price.source == "custom:batch-discount"
    cost = price.cost(TokenUsage(input_tokens=1_000_000, output_tokens=1_000_000))
    assert cost.total == Decimal(18)  # (10 + 20) x 0.6


def test_cli_submit_status_and_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = worker_settings(tmp_path, "http://127.0.0.1:9/v1")
    config = tmp_path / "config.yaml"
    config.write_text(orjson.dumps(settings.model_dump(mode="json")).decode())
    inputs = tmp_path / "in.jsonl"
    inputs.write_bytes(b"\n".join(jsonl(chat_body("one"), chat_body("two"))))
    assert main(["batch", "submit", str(inputs), "--config", str(config), "--name", "t"]) == 0
    job_id = capsys.readouterr().out.split("job id:")[1].split()[0]
    assert main(["batch", "status", "--config", str(config)]) == 0
    table = capsys.readouterr().out
    assert job_id in table and "running" in table
    out = tmp_path / "results.jsonl"
    assert main(["batch", "results", job_id, "-o", str(out), "--config", str(config)]) == 0
    assert len(out.read_bytes().splitlines()) == 2
    inputs.write_bytes(b"{}\n")
    assert main(["batch", "submit", str(inputs), "--config", str(config)]) == 2
