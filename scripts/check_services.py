"""Probe the test PostgreSQL and Redis servers the way the test suite connects to them.

Used by scripts/services.sh. A TCP-level check (pg_isready) would pass a server that then
rejects the suite's login, so this logs in with the same drivers and DSNs the tests use.

Exit status tells the shell what to do next:
  0  ready;
  1  nothing answers yet (start it, or wait for it);
  2  it answers but refuses us (wrong auth or config: restarting would not help).

Usage:
  check_services.py postgres DSN [--create-database]
  check_services.py redis URL
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from urllib.parse import urlsplit

import asyncpg
import redis

READY = 0
UNREACHABLE = 1
REFUSED = 2
CONNECT_TIMEOUT_S = 3.0
MAINTENANCE_DATABASE = "postgres"


def report(message: str) -> None:
    print(message, file=sys.stderr)


def database_name(dsn: str) -> str:
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"expected a postgresql:// URL, got scheme {parts.scheme!r}")
    name = parts.path.lstrip("/")
    if not name:
        raise ValueError("the PostgreSQL URL names no database")
    return name


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def create_database(dsn: str, name: str) -> None:
    """Create ``name`` through the maintenance database, with the same credentials."""
    maintenance_dsn = urlsplit(dsn)._replace(path="/" + MAINTENANCE_DATABASE).geturl()
    conn = await asyncpg.connect(maintenance_dsn, timeout=CONNECT_TIMEOUT_S)
    try:
        await conn.execute(f"CREATE DATABASE {quote_identifier(name)}")
    except asyncpg.DuplicateDatabaseError:
        pass  # another run created it in between: that is the outcome we wanted
    finally:
        await conn.close()


async def probe_postgres(dsn: str, *, create_missing: bool) -> int:
    name = database_name(dsn)
    try:
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    except asyncpg.InvalidCatalogNameError:
        if not create_missing:
            report(f"PostgreSQL answers but database {name!r} does not exist")
            return REFUSED
        report(f"creating PostgreSQL database {name!r}")
        await create_database(dsn, name)
        return await probe_postgres(dsn, create_missing=False)
    except asyncpg.CannotConnectNowError as exc:  # starting up or shutting down: wait
        report(f"PostgreSQL is not accepting connections yet: {exc}")
        return UNREACHABLE
    except (OSError, TimeoutError) as exc:
        report(f"PostgreSQL does not answer: {exc}")
        return UNREACHABLE
    except asyncpg.PostgresError as exc:
        report(f"PostgreSQL refused the connection: {type(exc).__name__}: {exc}")
        return REFUSED
    try:
        await conn.fetchval("SELECT 1")
    finally:
        await conn.close()
    return READY


def probe_redis(url: str) -> int:
    client = redis.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
    )
    try:
        client.ping()
    # AuthenticationError subclasses ConnectionError, so it must be caught first.
    except (redis.AuthenticationError, redis.ResponseError) as exc:
        report(f"Redis refused the connection: {type(exc).__name__}: {exc}")
        return REFUSED
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        report(f"Redis does not answer: {exc}")
        return UNREACHABLE
    finally:
        client.close()
    return READY


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    servers = parser.add_subparsers(dest="server", required=True)
    postgres = servers.add_parser("postgres", help="log in to PostgreSQL and run SELECT 1")
    postgres.add_argument("dsn")
    postgres.add_argument(
        "--create-database", action="store_true", help="create the DSN's database if missing"
    )
    redis_parser = servers.add_parser("redis", help="PING Redis")
    redis_parser.add_argument("url")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        if args.server == "postgres":
            return asyncio.run(probe_postgres(args.dsn, create_missing=args.create_database))
        return probe_redis(args.url)
    except ValueError as exc:
        report(f"bad server address: {exc}")
        return REFUSED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
