"""Per-test PostgreSQL databases and Redis prefixes, so replicas of one test see only its data."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from tests.multiprocess.cluster import fresh_database


@pytest.fixture
async def replica_dsn(postgres_dsn: str) -> AsyncIterator[str]:
    """A database of this test's own, next to the session's (created on the same server)."""
    session_database = urlsplit(postgres_dsn).path.lstrip("/")
    async with fresh_database(postgres_dsn, f"{session_database}_{secrets.token_hex(3)}") as dsn:
        yield dsn


@pytest.fixture
def replica_prefix(redis_key_prefix: str, request: pytest.FixtureRequest) -> str:
    """A Redis key prefix for this test, under the session's (which is cleaned up at the end)."""
    return f"{redis_key_prefix}:{re.sub(r'[^a-z0-9]+', '-', request.node.name.lower())}"
