"""``GET /metrics`` on the real gateway over HTTP, in front of the fake upstream: a unary, a
streamed, a cached, a rate-limited, an upstream-failed and a bad-key request, then one scrape,
read back with ``prometheus_client``'s parser and checked against the ledger."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from costwarden.config import Settings, settings_from_dict
from costwarden.providers.fake_upstream import FakeUpstream
from costwarden.records import Status
from tests.gateway.conftest import ADMIN_KEY, RunningGateway, StartGateway, base_settings, model

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
QUESTION = [{"role": "user", "content": "How many requests did the gateway count?"}]


def metrics_settings(tmp_path: Path, upstream: FakeUpstream, **metrics: Any) -> Settings:
    data = base_settings(tmp_path, [model("gpt-4o-mini", f"{upstream.base_url}/v1")]).model_dump(
        mode="json"
    )
    data["savings"] = {"exact_cache": {"enabled": True}}
    data["policy"] = {"rate_limits": [{"scope": {"user": "bob"}, "rpm": 1}]}
    data["metrics"] = metrics
    return settings_from_dict(data)


async def ask(
    gw: RunningGateway, key: str, *, headers: dict[str, str] | None = None, **body: Any
) -> tuple[int, dict[str, str]]:
    payload = {"model": "gpt-4o-mini", "messages": QUESTION, **body}
    hdrs = {"authorization": f"Bearer {key}", **(headers or {})}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gw.url}/v1/chat/completions", json=payload, headers=hdrs) as resp,
    ):
        await resp.read()  # the whole answer, streamed or not
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}


async def scrape(gw: RunningGateway, key: str | None = None) -> tuple[int, str, str]:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gw.url}/metrics", headers=headers) as resp,
    ):
        return resp.status, resp.headers.get("content-type", ""), await resp.text()


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, lbls), v in samples.items() if n == name and wanted <= lbls)


async def traffic(gw: RunningGateway) -> list[str]:
    """One request of each kind; returns the request ids that have a ledger record."""
    bob = await gw.new_key("bob", "ops")
    feature = {"x-costwarden-feature": "qa"}
    ids = []
    for body in ({"temperature": 0}, {"temperature": 0}):  # a miss, then an exact-cache hit
        status, headers = await ask(gw, gw.key, headers=feature, **body)
        assert status == 200
        ids.append(headers["x-request-id"])
    assert headers["x-costwarden-cache"] == "hit-exact"
    streamed = await ask(gw, gw.key, stream=True, stream_options={"include_usage": True})
    ids.append(streamed[1]["x-request-id"])
    ids.append((await ask(gw, bob))[1]["x-request-id"])
    status, headers = await ask(gw, bob)  # over bob's 1 request a minute
    assert status == 429
    ids.append(headers["x-request-id"])
    status, headers = await ask(gw, gw.key, x_fake={"status": 400})
    assert status == 400
    ids.append(headers["x-request-id"])
    assert (await ask(gw, "cw-not-a-key"))[0] == 401
    return ids


async def test_metrics_count_every_kind_of_request_and_match_the_ledger(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(metrics_settings(tmp_path, upstream))
    ids = await traffic(gw)
    status, content_type, text = await scrape(gw)
    assert status == 200
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    got = parse(text)
    records = [await gw.record(request_id) for request_id in ids]
    assert [r.status for r in records] == [
        Status.OK,
        Status.OK,
        Status.OK,
        Status.OK,
        Status.REJECTED,
        Status.UPSTREAM_ERROR,
    ]

    base = {"api": "chat.completions", "model": "gpt-4o-mini"}
    requests = "costwarden_requests_total"
    alice = {**base, "team": "research"}
    assert total(got, requests, **alice, provider="openai", status="ok") == 2  # miss, stream
    assert total(got, requests, **alice, provider="", status="ok") == 1  # the cache hit
    assert total(got, requests, **alice, provider="openai", status="upstream_error") == 1
    assert total(got, requests, **base, team="ops", provider="openai", status="ok") == 1
    assert total(got, requests, **base, team="ops", provider="", status="rejected") == 1
    assert total(got, requests) == len(records)

    assert total(got, "costwarden_rejections_total", reason="rate_limit_exceeded") == 1
    assert total(got, "costwarden_rejections_total", reason="invalid_api_key") == 1
    assert total(got, "costwarden_rejections_total") == 2

    hit = {"kind": "cache_exact", "model": "gpt-4o-mini", "team": "research"}
    assert total(got, "costwarden_cache_hits_total", **hit) == 1
    assert total(got, "costwarden_saved_usd_total", **hit) == float(records[0].cost)
    assert records[1].cost_saved == records[0].cost

    ledger_cost = sum((r.cost for r in records), Decimal(0))
    assert ledger_cost > 0
    assert total(got, "costwarden_cost_usd_total") == float(ledger_cost)
    assert total(got, "costwarden_cost_usd_total", feature="qa") == float(records[0].cost)
    for kind in ("input", "output"):
        counted = sum(getattr(r.usage, f"{kind}_tokens") for r in records)
        assert total(got, "costwarden_tokens_total", type=kind) == counted > 0

    duration = "costwarden_request_duration_seconds"
    assert total(got, f"{duration}_count") == len(records)
    assert total(got, f"{duration}_bucket", le="+Inf") == len(records)
    reached = [r for r in records if r.attempts]
    assert total(got, "costwarden_upstream_duration_seconds_count") == len(reached) == 4
    seconds = sum(r.latency_ms for r in records) / 1000
    assert abs(total(got, f"{duration}_sum") - seconds) < 1e-9

    assert total(got, "costwarden_requests_in_flight") == 0
    assert total(got, "costwarden_ledger_appended_total") == len(records)
    assert total(got, "costwarden_process_start_time_seconds") > 0


async def test_metrics_can_require_the_admin_key(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(metrics_settings(tmp_path, upstream, require_admin_key=True))
    assert (await scrape(gw))[0] == 401
    assert (await scrape(gw, gw.key))[0] == 401  # a client key is not the admin key
    status, _, text = await scrape(gw, ADMIN_KEY)
    assert status == 200 and "costwarden_requests_total" in text


async def test_metrics_can_be_turned_off(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(metrics_settings(tmp_path, upstream, enabled=False))
    assert (await ask(gw, gw.key))[0] == 200
    assert (await scrape(gw))[0] == 404
    assert gw.services.metrics is None
