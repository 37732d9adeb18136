"""Provider Batch API submissions: a group of items sent as one provider batch, under a lease.

A worker claims queued items into a submission (status ``preparing``), uploads them, creates
the provider batch and stores its id (``submitted``), then polls. The submission's lease covers
its items; a worker killed at any point leaves a submission whose lease runs out, and the next
worker resumes it: it polls the provider batch already created (found again by the metadata
costwarden put on it when its id was not stored yet) rather than paying for the items twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from costwarden.batch.db import Db, Tx
from costwarden.batch.models import WORKING_JOBS, ClaimedItem, Submission, new_id
from costwarden.batch.queue import claimed

_RESUMABLE = (
    "SELECT s.submission_id, s.job_id, s.status, s.provider_batch_id FROM batch_submissions s "
    "JOIN batch_jobs j ON j.job_id = s.job_id "
    "WHERE s.status <> 'done' AND s.lease_until < ? AND j.status IN (?, ?) AND j.mode = ?"
)
_JOBS = (
    "SELECT j.job_id, j.max_attempts FROM batch_jobs j WHERE j.status IN (?, ?) "
    "AND j.mode = 'batch_api'"
)
_TAKE_ITEMS = (
    "UPDATE batch_items SET status = 'submitted', submission_id = ?, lease_token = ?, "
    "lease_owner = ?, lease_until = NULL, attempts = attempts + 1 WHERE item_id IN ("
    "SELECT i.item_id FROM batch_items i WHERE i.job_id = ? AND i.status = 'queued' "
    "AND i.next_attempt_at <= ? AND i.attempts < ? ORDER BY i.next_attempt_at, i.seq "
    "LIMIT ?{lock}) RETURNING item_id, job_id, custom_id, body, attempts"
)


class Submissions:
    def __init__(self, db: Db, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    async def claim(
        self,
        owner: str,
        max_items: int,
        lease_s: float,
        job_id: str | None = None,
        skip_jobs: Sequence[str] = (),
    ) -> Submission | None:
        """Resume a submission whose worker died, else start one from queued items (of no
        job in ``skip_jobs``: those the policy paused); None when there is nothing to do."""
        now = self._clock()
        async with self._db.transaction() as tx:
            resumed = await self._resume(tx, owner, now, lease_s, job_id)
            if resumed is not None:
                return resumed
            return await self._start(
                tx,
                owner,
                now,
                lease_s=lease_s,
                max_items=max_items,
                job_id=job_id,
                skip_jobs=frozenset(skip_jobs),
            )

    async def _resume(
        self, tx: Tx, owner: str, now: float, lease_s: float, job_id: str | None
    ) -> Submission | None:
        where = _RESUMABLE + (" AND s.job_id = ?" if job_id else "")
        lock = " FOR UPDATE OF s SKIP LOCKED" if self._db.skip_locked else ""
        rows = await tx.fetch(
            f"{where} ORDER BY s.created_at LIMIT 1{lock}",
            now,
            *WORKING_JOBS,
            "batch_api",
            *([job_id] if job_id else []),
        )
        if not rows:
            return None
        row, token = rows[0], new_id("lt")
        await tx.execute(
            "UPDATE batch_submissions SET lease_owner = ?, lease_token = ?, lease_until = ? "
            "WHERE submission_id = ?",
            owner,
            token,
            now + lease_s,
            row["submission_id"],
        )
        items = await tx.fetch(
            "UPDATE batch_items SET lease_token = ?, lease_owner = ? WHERE submission_id = ? "
            "AND status = 'submitted' RETURNING item_id, job_id, custom_id, body, attempts",
            token,
            owner,
            row["submission_id"],
        )
        return Submission(
            row["submission_id"],
            row["job_id"],
            row["status"],
            row["provider_batch_id"],
            token,
            tuple(claimed(item, token) for item in items),
            resumed=True,
        )

    async def _start(
        self,
        tx: Tx,
        owner: str,
        now: float,
        *,
        lease_s: float,
        max_items: int,
        job_id: str | None,
        skip_jobs: frozenset[str],
    ) -> Submission | None:
        jobs = await tx.fetch(
            _JOBS + (" AND j.job_id = ?" if job_id else "") + " ORDER BY j.created_at",
            *WORKING_JOBS,
            *([job_id] if job_id else []),
        )
        submission_id, token = new_id("bs"), new_id("lt")
        lock = " FOR UPDATE OF i SKIP LOCKED" if self._db.skip_locked else ""
        for job in (j for j in jobs if j["job_id"] not in skip_jobs):
            rows = await tx.fetch(
                _TAKE_ITEMS.format(lock=lock),
                submission_id,
                token,
                owner,
                job["job_id"],
                now,
                job["max_attempts"],
                max_items,
            )
            if rows:
                items = tuple(claimed(row, token) for row in rows)
                await tx.execute(
                    "INSERT INTO batch_submissions (submission_id, job_id, status, lease_owner, "
                    "lease_token, lease_until, items, created_at) "
                    "VALUES (?, ?, 'preparing', ?, ?, ?, ?, ?)",
                    submission_id,
                    job["job_id"],
                    owner,
                    token,
                    now + lease_s,
                    len(items),
                    now,
                )
                return Submission(submission_id, job["job_id"], "preparing", None, token, items)
        return None

    async def submitted(self, submission: Submission, provider_batch_id: str) -> bool:
        """Store the provider batch's id; False if the lease was lost meanwhile."""
        changed = await self._db.execute(
            "UPDATE batch_submissions SET status = 'submitted', provider_batch_id = ? "
            "WHERE submission_id = ? AND lease_token = ?",
            provider_batch_id,
            submission.submission_id,
            submission.lease_token,
        )
        return changed == 1

    async def release(self, submission: Submission) -> None:
        """Let another worker resume it now (a stopping worker's provider batch runs on)."""
        await self._db.execute(
            "UPDATE batch_submissions SET lease_until = ?, lease_owner = NULL "
            "WHERE submission_id = ? AND lease_token = ?",
            self._clock(),
            submission.submission_id,
            submission.lease_token,
        )

    async def close(self, submission: Submission) -> None:
        await self._db.execute(
            "UPDATE batch_submissions SET status = 'done', finished_at = ?, lease_owner = NULL, "
            "lease_until = NULL WHERE submission_id = ? AND lease_token = ?",
            self._clock(),
            submission.submission_id,
            submission.lease_token,
        )

    async def items_left(self, submission: Submission) -> list[ClaimedItem]:
        """Items of the submission not finished yet (those a poll must still account for)."""
        rows = await self._db.fetch(
            "SELECT item_id, job_id, custom_id, body, attempts FROM batch_items "
            "WHERE submission_id = ? AND status = 'submitted' AND lease_token = ?",
            submission.submission_id,
            submission.lease_token,
        )
        return [claimed(row, submission.lease_token) for row in rows]
