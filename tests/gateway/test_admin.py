"""The admin API: keys (hashed, shown once), records and spend, behind the admin key."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from tests.gateway.conftest import ADMIN_KEY, RunningGateway
from tests.gateway.test_openai_api import client


async def admin(
    gw: RunningGateway, method: str, path: str, json: Any = None, key: str = ADMIN_KEY
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, f"{gw.url}{path}", json=json, headers={"authorization": f"Bearer {key}"}
        ) as resp,
    ):
        return resp.status, await resp.json()


async def test_key_lifecycle(gateway: RunningGateway) -> None:
    status, created = await admin(gateway, "POST", "/admin/keys", {"user": "bob", "team": "ops"})
    assert status == 201
    secret = created["key"]
    assert secret.startswith("cw-")

    raw = await client(gateway, secret).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    record = await gateway.record(raw.headers["x-request-id"])
    assert record.principal.user == "bob" and record.principal.team == "ops"

    status, listed = await admin(gateway, "GET", "/admin/keys")
    assert status == 200
    assert secret not in str(listed)  # neither the key nor its hash is ever returned
    assert any(k["id"] == created["id"] for k in listed["data"])

    status, _ = await admin(gateway, "DELETE", f"/admin/keys/{created['id']}")
    assert status == 200
    with pytest.raises(openai.AuthenticationError):
        await client(gateway, secret).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )


async def test_keys_are_stored_hashed(gateway: RunningGateway) -> None:
    _, created = await admin(gateway, "POST", "/admin/keys", {"user": "carol"})
    db_bytes = Path(gateway.services.settings.ledger.sqlite_path).read_bytes()  # noqa: ASYNC240
    assert created["key"].encode() not in db_bytes


async def test_admin_needs_the_admin_key(gateway: RunningGateway) -> None:
    status, body = await admin(gateway, "GET", "/admin/keys", key="wrong")
    assert status == 401 and body["error"]["type"] == "authentication_error"
    status, _ = await admin(gateway, "GET", "/admin/keys", key=gateway.key)
    assert status == 401  # a client key is not an admin key


async def test_request_and_spend_endpoints(gateway: RunningGateway) -> None:
    raw = await client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    request_id = raw.headers["x-request-id"]
    status, record = await admin(gateway, "GET", f"/admin/requests/{request_id}")
    assert status == 200 and record["request_id"] == request_id
    assert Decimal(record["cost"]) == Decimal(raw.headers["x-costwarden-cost"])

    status, spend = await admin(gateway, "GET", "/admin/spend?group_by=user,model&since=1d")
    assert status == 200
    rows = [r for r in spend["data"] if r["user"] == "alice" and r["model"] == "gpt-4o-mini"]
    assert rows and Decimal(rows[0]["cost"]) >= Decimal(record["cost"])

    status, body = await admin(gateway, "GET", "/admin/spend?group_by=colour")
    assert status == 400 and "colour" in body["error"]["message"]
    status, body = await admin(gateway, "GET", "/admin/spend?group_by=day&day=yesterday")
    assert status == 400 and "yesterday" in body["error"]["message"]
