"""Security review, as tests: no secret in any log line, error body, metric or ledger byte;
the admin surface and the proxy keep separate keys; body limits; no CORS; constant-time
comparisons of secrets; keys at rest as digests."""

from __future__ import annotations

import ast
import hashlib
import logging
import re
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from costwarden.keys import hash_key
from costwarden.providers.fake_upstream import FakeUpstream
from tests.gateway.conftest import (
    ADMIN_KEY,
    RunningGateway,
    StartGateway,
    base_settings,
    model,
    start_gateway,
    upstream,
)
from tests.hardening.security_session import DISPLAY_PREFIX, drive, running_session

__all__ = ["start_gateway", "upstream"]  # fixtures, used by name

SRC = Path(__file__).resolve().parents[2] / "src" / "costwarden"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
_LOGGERS = ("costwarden", "uvicorn", "uvicorn.error", "uvicorn.access", "aiohttp", "asyncio")


def leaks(secret: str, text: str) -> list[str]:
    """Pieces of ``secret`` found in ``text``: the whole, a prefix longer than the one keys
    are displayed with, or any 12-character run of it."""
    found = [secret] if secret in text else []
    if secret[: DISPLAY_PREFIX + 1] in text:
        found.append(secret[: DISPLAY_PREFIX + 1])
    found += [secret[i : i + 12] for i in range(len(secret) - 11) if secret[i : i + 12] in text]
    return found


async def test_no_secret_in_logs_bodies_metrics_or_ledger(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("", *_LOGGERS):
        caplog.set_level(logging.DEBUG, logger=name or None)
    async with running_session(tmp_path) as session:
        await drive(session)
        _, metrics = await session.send("GET", "/metrics", session.admin_key)
    assert session.webhook_calls > 0  # the webhook path (its URL holds two tokens) ran
    assert len(caplog.records) > 50  # the access log and debug lines really were captured
    logs = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    bodies = b"\n".join(session.bodies).decode("utf-8", "replace")
    stored = _ledger_bytes(tmp_path)
    for secret in session.secrets:
        assert not leaks(secret, logs), f"in a log line: {leaks(secret, logs)}"
        assert not leaks(secret, bodies), f"in a response body: {leaks(secret, bodies)}"
        assert not leaks(secret, metrics.decode()), "in /metrics"
        assert secret.encode() not in stored, "in the ledger database or spool"


def _ledger_bytes(tmp: Path) -> bytes:
    files = [tmp / "ledger.db", tmp / "ledger.db-wal", *(tmp / "spool").glob("*")]
    return b"".join(f.read_bytes() for f in files if f.is_file())


async def _status(url: str, method: str, key: str | None, json: object = None) -> int:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, json=json, headers=headers, allow_redirects=False) as resp,
    ):
        return resp.status


@pytest.fixture
async def strict_gateway(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> RunningGateway:
    """A gateway with /metrics behind the admin key and a 4 KiB body limit."""
    models = [model("gpt-4o-mini", f"{upstream.base_url}/v1")]
    settings = base_settings(tmp_path, models, max_body_bytes=4096)
    settings = settings.model_copy(
        update={"metrics": settings.metrics.model_copy(update={"require_admin_key": True})}
    )
    return await start_gateway(settings)


async def test_virtual_keys_open_no_admin_surface(strict_gateway: RunningGateway) -> None:
    gw = strict_gateway
    for path in ("/admin/keys", "/admin/spend", "/metrics"):
        assert await _status(gw.url + path, "GET", gw.key) == 401
        assert await _status(gw.url + path, "GET", ADMIN_KEY) == 200
    assert await _status(gw.url + "/admin/keys", "POST", gw.key, {"user": "x"}) == 401
    # The dashboard sends anyone without the admin key or a session to its login form.
    assert await _status(gw.url + "/dashboard", "GET", gw.key) == 303
    assert await _status(gw.url + "/dashboard", "GET", ADMIN_KEY) == 200


async def test_the_admin_key_does_not_proxy(strict_gateway: RunningGateway) -> None:
    url = strict_gateway.url + "/v1/chat/completions"
    assert await _status(url, "POST", ADMIN_KEY, CHAT) == 401
    assert await _status(url, "POST", strict_gateway.key, CHAT) == 200


async def test_body_limit_is_configurable_and_enforced(strict_gateway: RunningGateway) -> None:
    url = strict_gateway.url + "/v1/chat/completions"
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]}
    assert await _status(url, "POST", strict_gateway.key, big) == 413
    headers = {"authorization": f"Bearer {strict_gateway.key}"}

    async def chunked() -> object:  # no content-length: the limit holds while reading
        for _ in range(10):
            yield b" " * 1000

    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=chunked(), headers=headers) as resp,
    ):
        assert resp.status == 413
        assert (await resp.json())["error"]["code"] == "payload_too_large"


async def test_cors_is_off(strict_gateway: RunningGateway) -> None:
    """No Access-Control-* header on any answer, preflight included: browsers on other
    origins cannot call the gateway (and so cannot be made to spend a key they hold)."""
    origin = {"origin": "https://evil.example", "access-control-request-method": "POST"}
    async with aiohttp.ClientSession() as http:
        for method, path in (
            ("OPTIONS", "/v1/chat/completions"),
            ("GET", "/health"),
            ("POST", "/v1/chat/completions"),
            ("OPTIONS", "/admin/keys"),
        ):
            headers = {**origin, "authorization": f"Bearer {strict_gateway.key}"}
            async with http.request(
                method,
                strict_gateway.url + path,
                headers=headers,
                json=CHAT if method == "POST" else None,
            ) as resp:
                assert not [h for h in resp.headers if h.lower().startswith("access-control")]
                if method == "OPTIONS" and path.startswith("/v1/"):
                    assert resp.status == 405


async def test_keys_are_stored_as_sha256_digests(strict_gateway: RunningGateway) -> None:
    key = await strict_gateway.new_key("dora")
    path = strict_gateway.services.settings.ledger.sqlite_path
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT key_hash, key_prefix FROM virtual_keys").fetchall()
    assert (hashlib.sha256(key.encode()).hexdigest(), key[:DISPLAY_PREFIX]) in rows
    assert hash_key(key) in {r[0] for r in rows}
    assert all(len(r[1]) == DISPLAY_PREFIX for r in rows)


# Names that hold credentials. File digests compared with pinned public constants
# (pricing/tokens.py, savings/embedding.py) are integrity checks, not secrets.
_SECRET_NAME = re.compile(
    r"(admin_key|api_key|secret|passw|signature|cookie|bearer|credential|(^|_)token$)", re.I
)


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call):
        return _name(node.func)
    return ""


def test_no_secret_is_compared_with_equals() -> None:
    """Secrets are compared with ``hmac.compare_digest`` only: an ``==`` / ``!=`` whose side
    is named like a secret is a timing side channel (or a review to do here)."""
    found = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Compare):
                continue
            if not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                continue
            names = [_name(side) for side in (node.left, *node.comparators)]
            if any(_SECRET_NAME.search(n) for n in names):
                found.append(f"{path.relative_to(SRC)}:{node.lineno} {names}")
    assert found == []
