"""Continuous client load for fault tests: a pool of workers, each sending its next request as
soon as the last one is answered, round-robin over gateway URLs, every answer kept.

    async with Load(urls, key, body, workers=16) as load:
        await load.until(lambda: load.count(200) >= 100, timeout_s=20)
        ... stop a server ...
    answers = load.answers   # status, error code, request id, when it was answered

``report`` writes a run's figures as JSON to ``$COSTWARDEN_FAULT_REPORT`` when set (how
docs/reliability.md's tables were made); a test never prints them.

Connection errors (a gateway that does not answer at all) are kept as status 0: a fault test
asserts the gateway answered every request, so it must see them, not lose them.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
import orjson

_TIMEOUT = aiohttp.ClientTimeout(total=60)
_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class Sent:
    status: int  # HTTP status; 0: no answer (connection failed)
    code: str | None  # the error body's ``code``, when there is one
    request_id: str | None  # the gateway's x-request-id
    at: float  # time.monotonic() when the answer came


class Load:
    def __init__(
        self, urls: Sequence[str], key: str, body: dict[str, Any], *, workers: int = 16
    ) -> None:
        self._urls = itertools.cycle(urls)
        self._headers = {"authorization": f"Bearer {key}"}
        self._body = orjson.dumps(body)
        self._workers = workers
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self.answers: list[Sent] = []

    async def __aenter__(self) -> Load:
        connector = aiohttp.TCPConnector(limit=0)
        self._session = aiohttp.ClientSession(connector=connector, timeout=_TIMEOUT)
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self._workers)]
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping = True  # every worker finishes the request it has in flight
        await asyncio.gather(*self._tasks)
        assert self._session is not None
        await self._session.close()

    def count(self, status: int, since: float = 0.0, code: str | None = None) -> int:
        return sum(
            1
            for a in self.answers
            if a.status == status and a.at >= since and (code is None or a.code == code)
        )

    async def until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Wait (while the load runs) until ``done()``; False if ``timeout_s`` passed first."""
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(_POLL_S)
        return True

    async def _work(self) -> None:
        while not self._stopping:
            self.answers.append(await self._one(next(self._urls)))

    async def _one(self, url: str) -> Sent:
        assert self._session is not None
        headers = {**self._headers, "content-type": "application/json"}
        try:
            async with self._session.post(url, data=self._body, headers=headers) as response:
                raw = await response.read()
                code = None
                if response.status != 200:
                    error = orjson.loads(raw).get("error") or {}
                    code = error.get("code")
                request_id = response.headers.get("x-request-id")
                return Sent(response.status, code, request_id, time.monotonic())
        except (aiohttp.ClientError, TimeoutError):
            await asyncio.sleep(_POLL_S)  # a gateway that is not there: do not spin
            return Sent(0, None, None, time.monotonic())


def first_after(load: Load, status: int, since: float) -> float | None:
    """Seconds from ``since`` to the first answer with ``status`` after it."""
    times = [a.at for a in load.answers if a.status == status and a.at >= since]
    return min(times) - since if times else None


def report(name: str, figures: dict[str, Any]) -> None:
    """Append ``figures`` of run ``name`` to ``$COSTWARDEN_FAULT_REPORT`` (JSON lines)."""
    path = os.environ.get("COSTWARDEN_FAULT_REPORT")
    if path:
        with open(path, "ab") as out:
            out.write(orjson.dumps({"test": name, **figures}, default=str) + b"\n")
