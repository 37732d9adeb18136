"""A gateway in front of the fake upstream, tuned for fault tests, and one client call.

Timeouts are short (0.5 s) so slow-header and stalled-stream faults take a second, not ten;
backoff is near zero unless a test needs a Retry-After honoured.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from costwarden.providers.fake_upstream import FakeUpstream
from costwarden.records import UsageRecord
from tests.gateway.conftest import RunningGateway, StartGateway, base_settings, model

REQUEST_TIMEOUT_S = 0.5
GENERATED = 16  # the fake's default output: one token per word
OPENAI, ANTHROPIC = "openai", "anthropic"
_PATHS = {OPENAI: "/v1/chat/completions", ANTHROPIC: "/v1/messages"}
_MODELS = {OPENAI: "gpt-4o-mini", ANTHROPIC: "claude-sonnet-4"}
# Models whose only endpoint always fails, falling back to the one above.
FALLING = {OPENAI: "gpt-4o", ANTHROPIC: "claude-opus-4"}


@dataclass
class Exchange:
    """One client request as the client saw it, and what the fake upstream saw of it."""

    status: int
    body: bytes
    request_id: str
    upstream_tries: int
    seconds: float

    def json(self) -> Any:
        return orjson.loads(self.body)


async def fault_gateway(
    tmp_path: Path, upstream: FakeUpstream, start: StartGateway, **gateway: Any
) -> RunningGateway:
    base = f"{upstream.base_url}/v1"
    anthropic = {"provider": "anthropic"}
    # The failing endpoints' upstream model carries the fault, which no catalog prices.
    own_price = {"mode": "custom", "custom": [{"input_per_mtok": "5", "output_per_mtok": "15"}]}
    models = [
        model("gpt-4o-mini", base),
        model(
            "gpt-4o",
            base,
            endpoint={"upstream_model": "gpt-4o?status=503"},
            fallbacks=["gpt-4o-mini"],
            pricing=own_price,
        ),
        model(
            "claude-sonnet-4",
            base,
            endpoint={**anthropic, "upstream_model": "claude-sonnet-4-20250514"},
        ),
        model(
            "claude-opus-4",
            base,
            endpoint={**anthropic, "upstream_model": "claude-opus-4-20250514?status=529"},
            fallbacks=["claude-sonnet-4"],
            pricing=own_price,
        ),
    ]
    settings = {"request_timeout_s": REQUEST_TIMEOUT_S, **gateway}
    gw = await start(base_settings(tmp_path, models, **settings))
    gw.upstream = upstream
    return gw


async def call(
    gw: RunningGateway,
    protocol: str,
    stream: bool,
    knobs: dict[str, str],
    model_name: str | None = None,
) -> Exchange:
    """POST one request carrying ``knobs`` for the fake; count the upstream tries it caused
    by a marker in its prompt."""
    marker = uuid.uuid4().hex
    body: dict[str, Any] = {
        "model": model_name or _MODELS[protocol],
        "messages": [{"role": "user", "content": f"Fault case {marker}: tell me a story."}],
        "max_tokens": 100,
        "stream": stream,
        "x_fake": {k: v.replace("{id}", marker) for k, v in knobs.items()},
    }
    headers = {"authorization": f"Bearer {gw.key}"}
    started = time.perf_counter()
    async with (
        aiohttp.ClientSession() as session,
        session.post(gw.url + _PATHS[protocol], json=body, headers=headers) as resp,
    ):
        raw = await resp.read()
    seconds = time.perf_counter() - started
    assert gw.upstream is not None
    tries = sum(marker.encode() in r.raw_body for r in gw.upstream.requests)
    return Exchange(resp.status, raw, resp.headers["x-request-id"], tries, seconds)


async def ledger_records(gw: RunningGateway) -> dict[str, UsageRecord]:
    """Every record in the ledger, by request id."""
    await gw.services.ledger.flush()
    store = gw.services.ledger.store
    ids = await store.all_request_ids()
    records = {i: await store.get_record(i) for i in ids}
    return {i: r for i, r in records.items() if r is not None}


def priced(gw: RunningGateway, record: UsageRecord) -> Decimal:
    """What the gateway's own price book makes of each attempt's usage, summed."""
    total = Decimal(0)
    settings = gw.services.settings
    for attempt in record.attempts:
        if attempt.usage is None:
            continue
        config = settings.model(attempt.model)
        assert config is not None
        price = gw.services.prices.price_for(config, config.endpoints[0], record.created_at)
        assert price is not None
        total += price.cost(attempt.usage).total
    return total


def sse_events(body: bytes) -> list[bytes]:
    """The data lines of a streamed answer."""
    return [line[6:] for line in body.split(b"\n") if line.startswith(b"data: ")]
