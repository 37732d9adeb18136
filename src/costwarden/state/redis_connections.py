"""Connections for the Redis backend's scripts, without redis-py's per-command pool work.

redis-py 8's pool does, for every command: a ``Condition`` wait under a timeout, a lock,
three awaited observability hooks and a check that the socket holds no stray data (a system
call). Measured on the gateway's thread: ~80 µs of CPU per script call through the client,
~50 µs on a bare redis-py connection. The backend's hot path is script calls that always read
their whole reply, so it keeps its own idle connections — made by the pool's own factory, so
URL, auth, TLS and database are the configured ones — and hands them out with a list pop.

A connection whose call failed other than with a Redis error reply, or was cancelled before
its reply was read, may hold half a reply: it is closed, never reused. At most ``limit`` are
open; further calls wait in arrival order, ``wait_s`` at most. A script the server does not
know (restarted, ``SCRIPT FLUSH``) is loaded and the call retried once.

The connection's ``socket_timeout`` (redis-py's default: 5 s) bounds each whole call here,
with one ``asyncio.timeout``, instead of inside redis-py: there, every command's write goes
through ``asyncio.wait_for``, which on Python 3.11 makes a task and costs a loop iteration
per call, and every read enters a timeout context of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import hiredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


@dataclass(frozen=True, slots=True)
class Script:
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        # SHA-1 is what Redis names scripts by (EVALSHA), not a security measure.
        digest = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()
        object.__setattr__(self, "sha", digest)


class ScriptConnections:
    def __init__(
        self,
        factory: Callable[[], AbstractConnection],
        limit: int,
        *,
        wait_s: float = 10.0,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._factory = factory
        self._limit = limit
        self._wait_s = wait_s
        self._idle: list[AbstractConnection] = []
        self._open = 0  # idle + in use + being connected
        # A waiter gets a connection, or None: a slot freed by a closed one, to connect anew.
        self._waiters: deque[asyncio.Future[AbstractConnection | None]] = deque()
        self._closing: set[asyncio.Task[None]] = set()
        self._call_timeout_s: float | None = None  # the connections' socket_timeout

    @property
    def open_connections(self) -> int:
        return self._open

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """``EVALSHA`` of ``script`` (``EVAL``-equivalent: loaded first if the server lost it)."""
        connection = await self._acquire()
        reusable = False
        try:
            async with asyncio.timeout(self._call_timeout_s):
                try:
                    reply = await _evalsha(connection, script.sha, keys, args)
                except NoScriptError:
                    await connection.send_command("SCRIPT", "LOAD", script.source)
                    await connection.read_response()
                    reply = await _evalsha(connection, script.sha, keys, args)
            reusable = True
            return reply
        except ResponseError:
            reusable = True  # an error reply is a whole reply: the connection is in step
            raise
        except TimeoutError as exc:
            raise RedisTimeoutError(
                f"Redis did not answer a script call within {self._call_timeout_s} s"
            ) from exc
        finally:
            self._release(connection, reusable)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            self._open -= 1
            await connection.disconnect()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def _acquire(self) -> AbstractConnection:
        if self._idle:
            return self._idle.pop()
        if self._open < self._limit:
            self._open += 1
            return await self._connect()
        waiter: asyncio.Future[AbstractConnection | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self._wait_s):
                handed = await waiter
        except TimeoutError as exc:
            raise RedisConnectionError("no Redis connection available") from exc
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._hand_over(waiter.result())  # handed over as we were cancelled: pass on
            raise
        return handed if handed is not None else await self._connect()

    async def _connect(self) -> AbstractConnection:
        """A new connection in a slot already counted in ``_open``."""
        connection = self._factory()
        try:
            await connection.connect()  # type: ignore[no-untyped-call]  # untyped in redis-py
        except BaseException:
            self._hand_over(None)
            raise
        # Connected (the handshake under redis-py's timeout); calls are bounded in ``run``.
        self._call_timeout_s = connection.socket_timeout
        connection.socket_timeout = None
        return connection

    def _release(self, connection: AbstractConnection, reusable: bool) -> None:
        if reusable:
            self._hand_over(connection)
            return
        task = asyncio.get_running_loop().create_task(connection.disconnect(nowait=True))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        self._hand_over(None)

    def _hand_over(self, connection: AbstractConnection | None) -> None:
        """Give a connection (or a freed slot) to the longest waiter, else keep it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        if connection is None:
            self._open -= 1
        else:
            self._idle.append(connection)


async def _evalsha(
    connection: AbstractConnection, sha: str, keys: Sequence[str], args: Sequence[Any]
) -> Any:
    # Packed by hiredis (C): redis-py's asyncio connection packs in Python, ~75 µs for a
    # 46-argument call against ~9, and a batch's call carries a hundred keys and more.
    command = hiredis.pack_command(("EVALSHA", sha, len(keys), *keys, *args))
    await connection.send_packed_command(command)
    return await connection.read_response()
