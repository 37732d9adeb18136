"""Both counter backends, real: in-process, and Redis (the shared ``redis_url`` fixture of
tests/conftest.py) under a key prefix unique to each test, inside the session's prefix.

Imported by the conftest of every test package that runs a suite on both backends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from costwarden.state.base import StateBackend
from costwarden.state.memory import MemoryStateBackend
from costwarden.state.redis import RedisStateBackend


@pytest.fixture
async def key_prefix(redis_url: str, redis_key_prefix: str) -> AsyncIterator[str]:
    prefix = f"{redis_key_prefix}:{uuid.uuid4().hex}"
    yield prefix
    client = Redis.from_url(redis_url)
    keys = [key async for key in client.scan_iter(match="{" + prefix + "}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def backend(
    request: pytest.FixtureRequest, redis_url: str, key_prefix: str
) -> AsyncIterator[StateBackend]:
    state: StateBackend
    if request.param == "memory":
        state = MemoryStateBackend()
    else:
        state = RedisStateBackend.from_url(redis_url, key_prefix)
    yield state
    await state.aclose()
