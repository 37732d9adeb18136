"""Budgets managed at run time through the admin API (and the CLI), over real HTTP."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from costwarden.config import Settings, settings_from_dict
from costwarden.providers.fake_upstream import FakeUpstream
from tests.gateway.conftest import ADMIN_KEY, RunningGateway, StartGateway, base_settings, model

ASK = [{"role": "user", "content": "Summarise the budget review."}]
ORG = {"name": "org", "limit_usd": "1000", "period": "month"}
# gpt-4o's worst case for 16 output tokens is ~$0.0002: a few requests fit, then none.
ALICE_TINY = {"scope": {"user": "alice"}, "period": "day", "limit_usd": "0.0005"}


def settings_for(tmp_path: Path, upstream: FakeUpstream, spool: str = "spool") -> Settings:
    base = f"{upstream.base_url}/v1"
    data = base_settings(tmp_path, [model("gpt-4o", base)]).model_dump(mode="json")
    data["policy"] = {"budgets": [ORG], "budget_refresh_s": 0.05}
    data["ledger"]["spool_dir"] = str(tmp_path / spool)  # one spool per replica
    return settings_from_dict(data)


async def admin(
    gw: RunningGateway, method: str, path: str, body: Any = None, raw: bytes | None = None
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            f"{gw.url}{path}",
            json=body if raw is None else None,
            data=raw,
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
        ) as resp,
    ):
        return resp.status, await resp.json()


async def chat(gw: RunningGateway, key: str) -> tuple[int, dict[str, Any]]:
    body = {"model": "gpt-4o", "messages": ASK, "max_tokens": 16}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{gw.url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
        ) as resp,
    ):
        return resp.status, await resp.json()


async def spend_until_refused(gw: RunningGateway) -> tuple[int, dict[str, Any]]:
    """Alice's requests one after another until one is refused: (admitted, refusal body)."""
    for admitted in range(50):
        status, body = await chat(gw, gw.key)
        if status != 200:
            assert status == 429, body
            return admitted, body
    raise AssertionError("alice was never refused")


async def wait_until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``condition``; the bound only guards against a hang, it asserts no timing."""
    for _ in range(500):
        if await condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


async def test_budget_set_at_run_time_refuses_then_delete_lifts_it(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(settings_for(tmp_path, upstream))
    assert (await chat(gw, gw.key))[0] == 200  # no budget for alice yet

    status, stored = await admin(gw, "PUT", "/admin/budgets/alice-tiny", ALICE_TINY)
    assert status == 200
    assert stored == {
        "name": "alice-tiny",
        "scope": {"user": "alice"},
        "period": "day",
        "limit_usd": "0.0005",
        "soft_thresholds": [50, 80, 100],
        "label": "alice-tiny",
        "source": "runtime",
    }
    admitted, refusal = await spend_until_refused(gw)
    assert admitted >= 1
    assert refusal["error"]["code"] == "budget_exceeded"
    assert "'alice-tiny'" in refusal["error"]["message"]
    bob = await gw.new_key("bob")
    assert (await chat(gw, bob))[0] == 200  # only alice's budget is spent

    status, report = await admin(gw, "GET", "/admin/budgets/status?user=alice")
    assert status == 200 and report["dimensions"] == {"user": "alice"}
    mine = next(s for s in report["data"] if s["budget"] == "alice-tiny")
    assert mine["source"] == "runtime" and mine["counter"].startswith("budget:user=alice:day:")
    assert Decimal(0) < Decimal(mine["spent_usd"]) <= Decimal("0.0005")
    assert Decimal(mine["remaining_usd"]) == Decimal("0.0005") - Decimal(mine["spent_usd"])
    assert mine["resets_at"] is not None and Decimal(mine["reserved_usd"]) == 0
    org = next(s for s in report["data"] if s["budget"] == "org")
    assert Decimal(org["spent_usd"]) > Decimal(mine["spent_usd"])  # bob's request too

    status, deleted = await admin(gw, "DELETE", "/admin/budgets/alice-tiny")
    assert (status, deleted["deleted"]) == (200, True)
    assert (await chat(gw, gw.key))[0] == 200


async def test_listing_overrides_and_errors(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(settings_for(tmp_path, upstream))
    status, listed = await admin(gw, "GET", "/admin/budgets")
    assert status == 200
    assert [(b["name"], b["source"], b["overridden"]) for b in listed["data"]] == [
        ("org", "config", False)
    ]
    # A runtime rule named like a config rule replaces it; deleting it restores the config one.
    status, _ = await admin(gw, "PUT", "/admin/budgets/org", {"limit_usd": "5"})
    assert status == 200
    _, listed = await admin(gw, "GET", "/admin/budgets")
    assert [(b["source"], b.get("overridden"), b["limit_usd"]) for b in listed["data"]] == [
        ("config", True, "1000"),
        ("runtime", None, "5"),
    ]
    _, deleted = await admin(gw, "DELETE", "/admin/budgets/org")
    assert deleted["config_rule_applies_again"] is True

    status, error = await admin(gw, "DELETE", "/admin/budgets/org")
    assert status == 409 and error["error"]["code"] == "conflict"
    assert "config file" in error["error"]["message"]
    status, error = await admin(gw, "DELETE", "/admin/budgets/nobody")
    assert status == 404

    bad_bodies = {
        "limit_usd: Input should be greater than 0": {"limit_usd": "-1"},
        "scope.colour": {"limit_usd": "1", "scope": {"colour": "red"}},
        "period": {"limit_usd": "1", "period": "fortnight"},
        "limit_usd: Field required": {"period": "day"},
    }
    for expected, body in bad_bodies.items():
        status, error = await admin(gw, "PUT", "/admin/budgets/x", body)
        assert status == 400, body
        assert expected in error["error"]["message"], error
    status, error = await admin(gw, "PUT", "/admin/budgets/x", raw=b"{not json")
    assert (status, error["error"]["code"]) == (400, "malformed_json")
    status, error = await admin(gw, "GET", "/admin/budgets/status?colour=red")
    assert status == 400 and "colour" in error["error"]["message"]
    status, _ = await admin(gw, "POST", "/admin/budgets")
    assert status == 405
    _, listed = await admin(gw, "GET", "/admin/budgets")
    assert [b["source"] for b in listed["data"]] == ["config"]  # nothing bad was stored


async def test_other_replica_applies_a_budget_set_on_one(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    # Two gateways sharing one ledger database, as replicas do.
    first = await start_gateway(settings_for(tmp_path, upstream, "spool-1"))
    second = await start_gateway(settings_for(tmp_path, upstream, "spool-2"))
    nothing_fits = {**ALICE_TINY, "limit_usd": "0.000001"}
    status, _ = await admin(first, "PUT", "/admin/budgets/alice-zero", nothing_fits)
    assert status == 200

    async def second_refuses_alice() -> bool:
        status, body = await chat(second, second.key)
        return status == 429 and "'alice-zero'" in body["error"]["message"]

    await wait_until(second_refuses_alice, "the second replica applies the new budget")
    await admin(second, "DELETE", "/admin/budgets/alice-zero")

    async def first_admits_alice() -> bool:
        return (await chat(first, first.key))[0] == 200

    await wait_until(first_admits_alice, "the first replica applies the deletion")


async def test_cli_sets_a_budget_a_running_gateway_applies(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    settings = settings_for(tmp_path, upstream)
    gw = await start_gateway(settings)
    config = tmp_path / "cli.yaml"
    config.write_text(yaml.safe_dump({"ledger": {"sqlite_path": settings.ledger.sqlite_path}}))

    async def cli(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "costwarden",
            "budgets",
            *args,
            "--config",
            str(config),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode()

    code, out = await cli("set", "alice-cli", "--limit-usd", "0.000001", "--scope", "user=alice")
    assert code == 0, out
    code, out = await cli("list")
    assert out.splitlines() == ["alice-cli\tuser=alice\tmonth\t0.000001\t50,80,100"]

    async def alice_refused() -> bool:
        return (await chat(gw, gw.key))[0] == 429

    await wait_until(alice_refused, "the gateway applies the budget the CLI stored")
    _, listed = await admin(gw, "GET", "/admin/budgets")
    assert ("alice-cli", "runtime") in [(b["name"], b["source"]) for b in listed["data"]]
    code, out = await cli("delete", "alice-cli")
    assert (code, out.strip()) == (0, "deleted budget alice-cli")
