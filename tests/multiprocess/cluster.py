"""Several gateway processes sharing one PostgreSQL ledger and one Redis state backend.

    with running_cluster(tmp_path, ClusterSpec(dsn, redis_url, prefix, policy), gateways=4) as c:
        answers = await post_all(c.urls, c.key, [body] * 1000)
    entries = await ledger_entries(c.settings)  # after the processes stopped

Everything is a real process (``costwarden serve``, the fake upstream with ``--workers``), so
the only state the replicas share is what they share in production: Redis and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from subprocess import Popen
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import orjson

from costwarden.config import Settings, settings_from_dict
from costwarden.ledger import Ledger
from tests.support import procs

MODEL = "gpt-4o-mini"
CHAT_PATH = "/v1/chat/completions"
# Generous: a test asserts on outcomes, never on speed; this only stops a hung request.
_REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=60)


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    postgres_dsn: str
    redis_url: str
    key_prefix: str
    policy: dict[str, Any]
    lease_seconds: float | None = None  # None: the StateConfig default


@dataclass(frozen=True, slots=True)
class Cluster:
    settings: Settings  # what every gateway runs with
    key: str  # one virtual key, valid on every gateway
    urls: list[str]  # chat completions URL of each gateway
    gateways: list[Popen[bytes]]  # in the order of ``urls``


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: dict[str, Any]

    @property
    def request_id(self) -> str:
        return self.headers["x-request-id"]

    @property
    def error(self) -> dict[str, Any]:
        error = self.body.get("error")
        assert isinstance(error, dict), f"no error object in a {self.status} answer: {self.body}"
        return error


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    status: str
    cost: Decimal | None
    created_at: float  # epoch seconds


def cluster_settings(spec: ClusterSpec, spool_dir: Path, upstream_port: int) -> dict[str, Any]:
    state: dict[str, Any] = {
        "backend": "redis",
        "redis_url": spec.redis_url,
        "key_prefix": spec.key_prefix,
    }
    if spec.lease_seconds is not None:
        state["lease_seconds"] = spec.lease_seconds
    return {
        "ledger": {
            "backend": "postgres",
            "postgres_dsn": spec.postgres_dsn,
            "spool_dir": str(spool_dir),
            "flush_interval_s": 0.05,
        },
        "state": state,
        "policy": spec.policy,
        "models": [
            {"name": MODEL, "endpoints": [{"api_base": f"http://127.0.0.1:{upstream_port}/v1"}]}
        ],
    }


@contextmanager
def running_cluster(
    tmp: Path, spec: ClusterSpec, gateways: int, upstream_workers: int = 2
) -> Iterator[Cluster]:
    """Fake upstream + ``gateways`` gateway processes, all started at once; stopped (SIGTERM,
    which drains each ledger into PostgreSQL) on exit. Logs go to ``tmp/logs``."""
    upstream_port = procs.free_port()
    gateway_ports = [procs.free_port() for _ in range(gateways)]
    data = cluster_settings(spec, tmp / "spool", upstream_port)
    config = procs.write_config(tmp / "cluster.yaml", data)
    key = procs.create_key(config, "replica-tester", "replicas")  # also migrates the database
    commands = [(procs.fake_upstream_command(upstream_port, upstream_workers), upstream_port)]
    commands += [(procs.gateway_command(config, port), port) for port in gateway_ports]
    logs = tmp / "logs"
    logs.mkdir(exist_ok=True)
    with procs.spawned_together(commands, logs=logs) as started:
        yield Cluster(
            settings=settings_from_dict(data),
            key=key,
            urls=[f"http://127.0.0.1:{port}{CHAT_PATH}" for port in gateway_ports],
            gateways=started[1:],
        )


async def post_one(
    session: aiohttp.ClientSession, url: str, key: str, body: dict[str, Any]
) -> Answer:
    headers = {"authorization": f"Bearer {key}"}
    async with session.post(url, json=body, headers=headers) as response:
        payload = orjson.loads(await response.read())
        return Answer(
            response.status,
            {name.lower(): value for name, value in response.headers.items()},
            payload,
        )


async def post_all(urls: Sequence[str], key: str, bodies: Sequence[dict[str, Any]]) -> list[Answer]:
    """Send every body at once, spread round-robin over ``urls``; answers in body order."""
    connector = aiohttp.TCPConnector(limit=0)  # one connection per request: all in flight
    async with aiohttp.ClientSession(connector=connector, timeout=_REQUEST_TIMEOUT) as session:
        return await asyncio.gather(
            *(
                post_one(session, url, key, body)
                for url, body in zip(itertools.cycle(urls), bodies, strict=False)
            )
        )


async def ledger_entries(settings: Settings) -> dict[str, LedgerEntry]:
    """Every usage record, by request id, once all spool segments are in PostgreSQL.

    Opening a ledger on the shared spool directory adopts the segments of gateways that died
    (SIGKILL) and copies them in, exactly as a restarted replica would.
    """
    ledger = await Ledger.open(settings.ledger)
    try:
        await ledger.flush()
    finally:
        await ledger.close()
    dsn = settings.ledger.postgres_dsn
    assert dsn is not None
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT request_id, status, cost, extract(epoch FROM created_at) AS created "
            "FROM usage_records"
        )
    finally:
        await conn.close()
    return {
        row["request_id"]: LedgerEntry(row["status"], row["cost"], float(row["created"]))
        for row in rows
    }


@asynccontextmanager
async def fresh_database(server_dsn: str, name: str) -> AsyncIterator[str]:
    """A new, empty database ``name`` on the server of ``server_dsn``; dropped on exit."""
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunsplit(urlsplit(server_dsn)._replace(path="/" + name))
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
