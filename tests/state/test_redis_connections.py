"""The Redis backend's script connections, on a real Redis: replies, lost scripts, error
replies, the connection limit, and connections cut or cancelled mid-call."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from costwarden.state.redis_connections import Script, ScriptConnections

ECHO = Script("return {KEYS[1], ARGV[1]}")
FAIL = Script("return redis.error_reply('ERR boom')")
# Busy for ~0.2 s inside Redis (scripts cannot sleep): holds its connection meanwhile.
BUSY = Script(
    "local t = redis.call('TIME'); local start = t[1] * 1e6 + t[2]; "
    "while true do t = redis.call('TIME'); "
    "if t[1] * 1e6 + t[2] - start > 200000 then return 1 end end"
)


@pytest.fixture
async def connections(redis_url: str):  # type: ignore[no-untyped-def]
    pool = ConnectionPool.from_url(redis_url)
    scripts = ScriptConnections(pool.make_connection, limit=2, wait_s=5)
    yield scripts
    await scripts.aclose()
    await pool.aclose()


async def test_a_script_runs_and_its_connection_is_reused(connections: ScriptConnections) -> None:
    for _ in range(3):
        assert await connections.run(ECHO, ["k"], ["v"]) == [b"k", b"v"]
    assert connections.open_connections == 1


async def test_a_script_the_server_lost_is_loaded_again(
    connections: ScriptConnections, redis_url: str
) -> None:
    await connections.run(ECHO, ["k"], ["v"])
    client = Redis.from_url(redis_url)
    await client.script_flush()
    await client.aclose()
    assert await connections.run(ECHO, ["k"], ["again"]) == [b"k", b"again"]


async def test_an_error_reply_raises_and_keeps_the_connection(
    connections: ScriptConnections,
) -> None:
    with pytest.raises(ResponseError, match="boom"):
        await connections.run(FAIL, [], [])
    assert await connections.run(ECHO, ["k"], ["v"]) == [b"k", b"v"]
    assert connections.open_connections == 1


async def test_no_more_than_the_limit_are_open_and_the_rest_wait(
    connections: ScriptConnections,
) -> None:
    replies = await asyncio.gather(*(connections.run(ECHO, ["k"], [str(i)]) for i in range(20)))
    assert [r[1] for r in replies] == [str(i).encode() for i in range(20)]
    assert connections.open_connections <= 2


async def test_waiting_longer_than_wait_s_is_a_connection_error(redis_url: str) -> None:
    pool = ConnectionPool.from_url(redis_url)
    scripts = ScriptConnections(pool.make_connection, limit=1, wait_s=0.05)
    busy = asyncio.create_task(scripts.run(BUSY, [], []))
    await asyncio.sleep(0.02)
    with pytest.raises(RedisConnectionError, match="no Redis connection available"):
        await scripts.run(ECHO, ["k"], ["v"])
    assert await busy == 1
    assert await scripts.run(ECHO, ["k"], ["v"]) == [b"k", b"v"]  # the slot came back
    await scripts.aclose()
    await pool.aclose()


async def test_a_call_cancelled_mid_reply_closes_its_connection(
    connections: ScriptConnections,
) -> None:
    busy = asyncio.create_task(connections.run(BUSY, [], []))
    await asyncio.sleep(0.05)
    busy.cancel()
    with pytest.raises(asyncio.CancelledError):
        await busy
    await asyncio.sleep(0.25)  # the busy script ends; its reply must not reach the next call
    assert connections.open_connections == 0
    assert await connections.run(ECHO, ["k"], ["fresh"]) == [b"k", b"fresh"]


async def test_a_connection_killed_by_the_server_fails_one_call_then_is_replaced(
    connections: ScriptConnections, redis_url: str
) -> None:
    await connections.run(ECHO, ["k"], ["v"])
    client = Redis.from_url(redis_url)
    listed = await client.client_list()
    ours = [c["id"] for c in listed if "EVALSHA" in c.get("cmd", "").upper()]
    for client_id in ours:
        await client.client_kill_filter(_id=client_id)
    await client.aclose()
    assert ours
    try:
        result = await connections.run(ECHO, ["k"], ["after"])
    except RedisConnectionError:
        result = await connections.run(ECHO, ["k"], ["after"])
    assert result == [b"k", b"after"]
    assert connections.open_connections == 1


async def test_a_call_longer_than_the_socket_timeout_times_out_and_is_not_reused(
    redis_url: str,
) -> None:
    pool = ConnectionPool.from_url(redis_url, socket_timeout=0.05)
    scripts = ScriptConnections(pool.make_connection, limit=1)
    assert await scripts.run(ECHO, ["k"], ["v"]) == [b"k", b"v"]  # connected, timeout taken
    with pytest.raises(RedisTimeoutError, match=r"within 0\.05 s"):
        await scripts.run(BUSY, [], [])
    assert scripts.open_connections == 0  # half a reply may be on it: closed
    await asyncio.sleep(0.25)  # the busy script ends; its reply must not reach the next call
    assert await scripts.run(ECHO, ["k"], ["fresh"]) == [b"k", b"fresh"]
    await scripts.aclose()
    await pool.aclose()
