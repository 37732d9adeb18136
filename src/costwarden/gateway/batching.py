"""The queue-and-drain mechanism both gateway batchers share.

Items queued while a batch is being processed wait for it and then go together in the next
one; one task drains the queue and ends when it is empty, so an idle gateway holds no task.
Subclasses say what a batch does (``_run``) and may react to the queue running dry
(``_drained``).
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class BatchQueue(Generic[T]):
    def __init__(self, name: str) -> None:
        self._name = name
        self._pending: list[T] = []
        self._task: asyncio.Task[None] | None = None

    async def flush(self) -> None:
        """Wait until everything queued so far has been processed (shutdown, tests)."""
        while self._task is not None:
            await asyncio.shield(self._task)

    def _start(self) -> None:
        """Make sure a task is draining the queue."""
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name=self._name)

    async def _run(self, batch: list[T]) -> None:
        raise NotImplementedError

    def _drained(self) -> None:
        """Called once the queue is empty and the draining task ends."""

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                await self._run(batch)
        finally:
            self._task = None
            self._drained()
