"""``GET /openapi.json``: what it describes, what it must never contain, and how to turn it off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
import schemathesis

from costwarden.gateway.openapi import build_openapi
from costwarden.policy.runtime import _BUDGET_NAME
from costwarden.providers.fake_upstream import FakeUpstream
from tests.gateway.conftest import ADMIN_KEY, RunningGateway, StartGateway, base_settings, model


async def _get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_document_describes_the_routes_served(gateway: RunningGateway) -> None:
    status, doc = await _get(f"{gateway.url}/openapi.json")  # no key needed
    assert status == 200 and doc["openapi"] == "3.1.0"
    assert doc == build_openapi(gateway.services.settings)
    schemathesis.openapi.from_dict(doc).validate()  # a valid OpenAPI 3.1 document
    paths = doc["paths"]
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/messages"):
        assert set(paths[path]) == {"post"}
    assert {"/v1/models", "/health", "/metrics", "/admin/keys", "/admin/spend"} <= set(paths)
    assert paths["/admin/keys"]["post"]["security"] == [{"adminKey": []}]


async def test_model_names_are_listed_per_protocol(gateway: RunningGateway) -> None:
    _, doc = await _get(f"{gateway.url}/openapi.json")
    schemas = doc["components"]["schemas"]
    chat = schemas["ChatCompletionRequest"]["properties"]["model"]["enum"]
    messages = schemas["MessagesRequest"]["properties"]["model"]["enum"]
    assert "gpt-4o-mini" in chat and "claude-sonnet-4" not in chat
    assert messages == ["claude-sonnet-4"]


async def test_refusals_are_described_in_the_protocol_of_the_route(gateway: RunningGateway) -> None:
    _, doc = await _get(f"{gateway.url}/openapi.json")
    for path, shape in (
        ("/v1/messages", "AnthropicError"),
        ("/v1/chat/completions", "OpenAIError"),
    ):
        responses = doc["paths"][path]["post"]["responses"]
        ref = responses["400"]["content"]["application/json"]["schema"]["$ref"]
        assert ref == f"#/components/schemas/{shape}"


async def test_document_holds_no_secret_and_no_upstream_address(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    base = f"{upstream.base_url}/v1"
    endpoint = {"api_key_env": "UPSTREAM_SECRET_VAR", "upstream_model": "private-snapshot"}
    settings = base_settings(tmp_path, [model("gpt-4o-mini", base, endpoint=endpoint)])
    gw = await start_gateway(settings, {"UPSTREAM_SECRET_VAR": "sk-upstream-secret"})
    async with aiohttp.ClientSession() as session, session.get(f"{gw.url}/openapi.json") as resp:
        text = await resp.text()
    for secret in (ADMIN_KEY, gw.key, "sk-upstream-secret", "UPSTREAM_SECRET_VAR",
                   upstream.base_url, "private-snapshot", str(tmp_path)):  # fmt: skip
        assert secret not in text


async def test_document_can_be_turned_off(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    settings = base_settings(tmp_path, [model("m", f"{upstream.base_url}/v1")], openapi=False)
    gw = await start_gateway(settings)
    status, body = await _get(f"{gw.url}/openapi.json")
    assert status == 404 and body["error"]["code"] == "not_found"


def test_budget_name_pattern_is_the_one_the_api_enforces() -> None:
    doc = build_openapi(base_settings(Path("unused"), []))
    param = doc["paths"]["/admin/budgets/{name}"]["put"]["parameters"][0]
    assert param["schema"]["pattern"] == f"^{_BUDGET_NAME.pattern}$"


@pytest.mark.parametrize("enabled", [True, False])
def test_metrics_route_is_described_only_when_served(enabled: bool) -> None:
    settings = base_settings(Path("unused"), [])
    settings = settings.model_copy(
        update={"metrics": settings.metrics.model_copy(update={"enabled": enabled})}
    )
    assert ("/metrics" in build_openapi(settings)["paths"]) is enabled
