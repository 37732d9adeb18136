"""Jobs: creating them (from a file or the gateway's intake), their counts, and settling them
once their items are finished or their failed share went over the failure budget."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import orjson

from costwarden.batch.db import Db, Tx
from costwarden.batch.models import (
    WORKING_JOBS,
    ItemStatus,
    ItemView,
    Job,
    JobCounts,
    JobSpec,
    JobStatus,
    NewItem,
    new_id,
)

_JOB_COLUMNS = (
    "job_id, name, model, api, mode, source, status, failure_budget, max_attempts, key_id, "
    "user_id, team, key_name, feature, env, created_at, finished_at, note"
)
_INSERT_ITEM = (
    "INSERT INTO batch_items (item_id, job_id, seq, custom_id, body, status, attempts, "
    "next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, 'queued', 0, ?, ?) "
    "ON CONFLICT (job_id, custom_id) DO NOTHING"
)
_ITEM_VIEW = (
    "SELECT item_id, job_id, seq, custom_id, status, attempts, http_status, result, error, "
    "request_id, cost FROM batch_items"
)
_INTAKE = (
    f"SELECT {_JOB_COLUMNS} FROM batch_jobs WHERE source = 'gateway' AND status = 'open' "  # noqa: S608
    "AND key_id = ? AND model = ? AND api = ? AND mode = ? "
    "AND COALESCE(feature, '') = ? AND COALESCE(env, '') = ? ORDER BY created_at LIMIT 1"
)


class JobStore:
    def __init__(self, db: Db, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    async def create(self, spec: JobSpec, status: JobStatus = JobStatus.RUNNING) -> Job:
        job_id = new_id("bj")
        p, tags = spec.principal, spec.tags
        await self._db.execute(
            f"INSERT INTO batch_jobs ({_JOB_COLUMNS}) VALUES "  # noqa: S608
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
            job_id,
            spec.name,
            spec.model,
            spec.api,
            spec.mode,
            spec.source,
            status.value,
            spec.failure_budget,
            spec.max_attempts,
            p.key_id if p else None,
            p.user if p else None,
            p.team if p else None,
            p.key_name if p else None,
            tags.feature,
            tags.env,
            self._clock(),
        )
        job = await self.get(job_id)
        assert job is not None  # just inserted
        return job

    async def intake(self, spec: JobSpec) -> Job:
        """The open gateway job of this key, model and tags (created on first use). Two
        gateways racing may each create one: harmless, a worker serves both."""
        key_id = spec.principal.key_id if spec.principal else ""
        rows = await self._db.fetch(
            _INTAKE,
            key_id,
            spec.model,
            spec.api,
            spec.mode,
            spec.tags.feature or "",
            spec.tags.env or "",
        )
        if rows:
            return Job.from_row(rows[0])
        return await self.create(spec, JobStatus.OPEN)

    async def add_items(self, job_id: str, items: Sequence[NewItem]) -> list[str]:
        """Add items (a custom_id already in the job is skipped: re-submitting a file is
        idempotent); return the ids of those added, in order."""
        now = self._clock()
        async with self._db.transaction() as tx:
            rows = await tx.fetch(
                "SELECT COALESCE(MAX(seq), 0) AS top FROM batch_items WHERE job_id = ?", job_id
            )
            first = int(rows[0]["top"]) + 1
            ids = [new_id("bi") for _ in items]
            values = [
                (
                    item_id,
                    job_id,
                    first + n,
                    item.custom_id,
                    orjson.dumps(item.body).decode(),
                    now,
                    now,
                )
                for n, (item_id, item) in enumerate(zip(ids, items, strict=True))
            ]
            await tx.executemany(_INSERT_ITEM, values)
            kept = await tx.fetch(
                "SELECT item_id FROM batch_items WHERE job_id = ? AND seq >= ?", job_id, first
            )
        stored = {row["item_id"] for row in kept}
        return [item_id for item_id in ids if item_id in stored]

    async def get(self, job_id: str) -> Job | None:
        rows = await self._db.fetch(
            f"SELECT {_JOB_COLUMNS} FROM batch_jobs WHERE job_id = ?",  # noqa: S608
            job_id,
        )
        return Job.from_row(rows[0]) if rows else None

    async def recent(self, limit: int = 50) -> list[Job]:
        rows = await self._db.fetch(
            f"SELECT {_JOB_COLUMNS} FROM batch_jobs ORDER BY created_at DESC LIMIT ?",  # noqa: S608
            limit,
        )
        return [Job.from_row(row) for row in rows]

    async def pending_items(self) -> int:
        """Items not finished yet in jobs still working (0: nothing left for any worker)."""
        rows = await self._db.fetch(
            "SELECT COUNT(*) AS n FROM batch_items i JOIN batch_jobs j ON j.job_id = i.job_id "
            "WHERE i.status IN ('queued', 'leased', 'submitted') AND j.status IN (?, ?)",
            *WORKING_JOBS,
        )
        return int(rows[0]["n"])

    async def counts(self, job_id: str, tx: Tx | None = None) -> JobCounts:
        rows = await (tx or self._db).fetch(
            "SELECT status, COUNT(*) AS n FROM batch_items WHERE job_id = ? GROUP BY status",
            job_id,
        )
        by_status = {row["status"]: int(row["n"]) for row in rows}
        costs = await (tx or self._db).fetch(
            "SELECT cost FROM batch_items WHERE job_id = ? AND status = 'done' "
            "AND cost IS NOT NULL",
            job_id,
        )
        # Summed here, exactly, in Decimal: SQLite keeps costs as text.
        cost = sum((Decimal(str(row["cost"])) for row in costs), Decimal(0))
        return JobCounts(
            total=sum(by_status.values()),
            cost=cost,
            **{status.value: by_status.get(status.value, 0) for status in ItemStatus},
        )

    async def items(self, job_id: str) -> list[ItemView]:
        rows = await self._db.fetch(f"{_ITEM_VIEW} WHERE job_id = ? ORDER BY seq", job_id)
        return [_item_view(row) for row in rows]

    async def item(self, item_id: str) -> ItemView | None:
        rows = await self._db.fetch(f"{_ITEM_VIEW} WHERE item_id = ?", item_id)
        return _item_view(rows[0]) if rows else None

    async def settle(self, tx: Tx, job_ids: Sequence[str]) -> None:
        """Finish running jobs with nothing left to do, and stop those whose failed items
        exceed the failure budget: a job that can no longer succeed should not keep spending."""
        for job_id in sorted(set(job_ids)):
            rows = await tx.fetch(
                "SELECT status, failure_budget FROM batch_jobs WHERE job_id = ?", job_id
            )
            if not rows or rows[0]["status"] != JobStatus.RUNNING.value:
                continue  # open intake jobs never finish; finished ones stay finished
            counts = await self.counts(job_id, tx)
            allowed = math.floor(float(rows[0]["failure_budget"]) * counts.total + 1e-9)
            if counts.failed > allowed:
                await self._over_budget(tx, job_id, counts.failed, allowed)
            elif counts.pending == 0:
                await tx.execute(
                    "UPDATE batch_jobs SET status = 'done', finished_at = ? WHERE job_id = ?",
                    self._clock(),
                    job_id,
                )

    async def _over_budget(self, tx: Tx, job_id: str, failed: int, allowed: int) -> None:
        now = self._clock()
        note = f"{failed} items failed, over the failure budget of {allowed}; rest cancelled"
        await tx.execute(
            "UPDATE batch_items SET status = 'cancelled', finished_at = ? "
            "WHERE job_id = ? AND status = 'queued'",
            now,
            job_id,
        )
        await tx.execute(
            "UPDATE batch_jobs SET status = 'failed', finished_at = ?, note = ? WHERE job_id = ?",
            now,
            note,
            job_id,
        )


def _item_view(row: dict[str, Any]) -> ItemView:
    cost = row["cost"]
    return ItemView(
        item_id=row["item_id"],
        job_id=row["job_id"],
        seq=int(row["seq"]),
        custom_id=row["custom_id"],
        status=row["status"],
        attempts=int(row["attempts"]),
        http_status=row["http_status"],
        result=row["result"],
        error=row["error"],
        request_id=row["request_id"],
        cost=None if cost is None else Decimal(str(cost)),
    )
