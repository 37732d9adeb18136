"""The item queue: claims under a lease, heartbeats, outcomes applied once, release on drain.

A claim hands an item to one worker until ``lease_until`` and stamps it with a fresh random
``lease_token``. Every later write about that try (heartbeat, outcome) is conditional on the
token, so when a lease expired and another worker re-claimed the item, the first worker's
late outcome changes nothing: an item is completed exactly once, by the holder of its lease.

A re-claim after an expired lease counts as a new attempt (the dead worker may have reached
the upstream); an item whose attempts are used up is failed instead of claimed again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from costwarden.batch.db import Db, Tx
from costwarden.batch.jobs import JobStore
from costwarden.batch.models import WORKING_JOBS, ClaimedItem, ItemStatus, Outcome, new_id

# Items a claim may take: queued and due, or leased by a worker whose lease ran out; of a job
# still working, in the given mode, with attempts left.
_CLAIMABLE = (
    "((i.status = 'queued' AND i.next_attempt_at <= ?) "
    " OR (i.status = 'leased' AND i.lease_until < ?)) "
    "AND i.attempts < j.max_attempts AND j.status IN (?, ?) AND j.mode = ?"
)
_EXHAUSTED = (
    "UPDATE batch_items SET status = 'failed', finished_at = ?, lease_owner = NULL, "
    "lease_token = NULL, lease_until = NULL, error = ? "
    "WHERE status = 'leased' AND lease_until < ? AND attempts >= "
    "(SELECT max_attempts FROM batch_jobs j WHERE j.job_id = batch_items.job_id) "
    "RETURNING job_id"
)
_FINISH = {
    ItemStatus.DONE: (
        "UPDATE batch_items SET status = 'done', http_status = ?, result = ?, error = ?, "
        "request_id = ?, cost = ?, record = ?, recorded = 0, finished_at = ?, "
        "lease_owner = NULL, lease_token = NULL, lease_until = NULL "
        "WHERE item_id = ? AND lease_token = ? AND status IN ('leased', 'submitted')"
    ),
    ItemStatus.FAILED: (
        "UPDATE batch_items SET status = 'failed', http_status = ?, result = ?, error = ?, "
        "request_id = ?, cost = ?, record = ?, recorded = 1, finished_at = ?, "
        "lease_owner = NULL, lease_token = NULL, lease_until = NULL "
        "WHERE item_id = ? AND lease_token = ? AND status IN ('leased', 'submitted')"
    ),
}
# A try the policy refused never reached an upstream: the item goes back as it was (the
# claim's attempt handed back), due when the refusal may have passed.
_DEFER = (
    "UPDATE batch_items SET status = 'queued', attempts = attempts - 1, next_attempt_at = ?, "
    "lease_owner = NULL, lease_token = NULL, lease_until = NULL, submission_id = NULL "
    "WHERE item_id = ? AND lease_token = ? AND status IN ('leased', 'submitted')"
)
_RETRY = (
    "UPDATE batch_items SET status = 'queued', http_status = ?, error = ?, next_attempt_at = ?, "
    "lease_owner = NULL, lease_token = NULL, lease_until = NULL, submission_id = NULL "
    "WHERE item_id = ? AND lease_token = ? AND status IN ('leased', 'submitted')"
)


def _claim_sql(skip_locked: str, *, by_job: bool, skipped: int = 0) -> str:
    where = _CLAIMABLE + (" AND i.job_id = ?" if by_job else "")
    if skipped:
        where += f" AND i.job_id NOT IN ({', '.join('?' * skipped)})"
    return (
        "UPDATE batch_items SET status = 'leased', lease_owner = ?, lease_token = ?, "  # noqa: S608
        "lease_until = ?, attempts = attempts + 1 WHERE item_id IN ("
        "SELECT i.item_id FROM batch_items i JOIN batch_jobs j ON j.job_id = i.job_id "
        f"WHERE {where} ORDER BY i.next_attempt_at, i.seq LIMIT ?{skip_locked}) "
        "RETURNING item_id, job_id, custom_id, body, attempts, seq"
    )


def lease_expired_error() -> str:
    message = "the lease ran out on the last attempt allowed (worker killed or stuck)"
    return orjson.dumps({"code": "attempts_exhausted", "message": message}).decode()


class ItemQueue:
    def __init__(self, db: Db, jobs: JobStore, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._jobs = jobs
        self._clock = clock

    async def claim(
        self,
        owner: str,
        limit: int,
        lease_s: float,
        *,
        mode: str,
        job_id: str | None = None,
        skip_jobs: Sequence[str] = (),
    ) -> list[ClaimedItem]:
        """Take up to ``limit`` items for ``owner`` until now + ``lease_s`` (none of the
        jobs in ``skip_jobs``: those the policy paused)."""
        if limit <= 0:
            return []
        now = self._clock()
        token = new_id("lt")
        params: list[Any] = [now, now, *WORKING_JOBS, mode, *([job_id] if job_id else [])]
        params += skip_jobs
        sql = _claim_sql(self._db.skip_locked, by_job=job_id is not None, skipped=len(skip_jobs))
        async with self._db.transaction() as tx:
            await self._fail_exhausted(tx, now)
            rows = await tx.fetch(
                sql,
                owner,
                token,
                now + lease_s,
                *params,
                limit,
            )
        # RETURNING has no order of its own; hand items out in input order.
        return [claimed(row, token) for row in sorted(rows, key=lambda row: row["seq"])]

    async def _fail_exhausted(self, tx: Tx, now: float) -> None:
        rows = await tx.fetch(_EXHAUSTED, now, lease_expired_error(), now)
        if rows:
            await self._jobs.settle(tx, [row["job_id"] for row in rows])

    async def heartbeat(self, owner: str, lease_s: float) -> int:
        """Extend every lease ``owner`` still holds (items and submissions); return how many.
        A lease that already ran out and was re-claimed belongs to someone else: untouched."""
        until = self._clock() + lease_s
        async with self._db.transaction() as tx:
            items = await tx.execute(
                "UPDATE batch_items SET lease_until = ? WHERE lease_owner = ? "
                "AND status = 'leased'",
                until,
                owner,
            )
            subs = await tx.execute(
                "UPDATE batch_submissions SET lease_until = ? WHERE lease_owner = ? "
                "AND status <> 'done'",
                until,
                owner,
            )
        return items + subs

    async def finish(self, outcomes: Sequence[Outcome]) -> set[str]:
        """Apply outcomes in one transaction; return the ids of the items they applied to (an
        outcome whose lease was lost applies to nothing)."""
        applied: set[str] = set()
        jobs: list[str] = []
        async with self._db.transaction() as tx:
            for outcome in outcomes:
                job_id = await self._apply(tx, outcome)
                if job_id is not None:
                    applied.add(outcome.item_id)
                    jobs.append(job_id)
            await self._jobs.settle(tx, jobs)
        return applied

    async def _apply(self, tx: Tx, o: Outcome) -> str | None:
        if o.status == ItemStatus.QUEUED:
            changed = await tx.execute(
                _RETRY, o.http_status, o.error, o.retry_at, o.item_id, o.lease_token
            )
        else:
            changed = await tx.execute(
                _FINISH[o.status],
                o.http_status,
                o.result,
                o.error,
                o.request_id,
                self._db.money(o.cost),
                o.record,
                self._clock(),
                o.item_id,
                o.lease_token,
            )
        if not changed:
            return None
        rows = await tx.fetch("SELECT job_id FROM batch_items WHERE item_id = ?", o.item_id)
        return str(rows[0]["job_id"])

    async def defer(self, items: Sequence[tuple[str, str]], until: float) -> int:
        """Hand back (item id, lease token) tries the policy refused: queued again, due at
        ``until``, their attempt not used (see ``_DEFER``); return how many were still ours."""
        deferred = 0
        async with self._db.transaction() as tx:
            for item_id, token in items:
                deferred += await tx.execute(_DEFER, until, item_id, token)
        return deferred

    async def release(self, owner: str, item_ids: Sequence[str]) -> int:
        """Hand items back at once (SIGTERM drain): queued, lease cleared, and due before
        anything else (they were already under way), so the next claim anywhere takes them
        instead of waiting for the lease to run out."""
        released = 0
        async with self._db.transaction() as tx:
            for item_id in item_ids:
                released += await tx.execute(
                    "UPDATE batch_items SET status = 'queued', next_attempt_at = 0, "
                    "lease_owner = NULL, lease_token = NULL, lease_until = NULL "
                    "WHERE item_id = ? AND lease_owner = ? AND status = 'leased'",
                    item_id,
                    owner,
                )
        return released

    async def unrecorded(self, finished_before: float, limit: int) -> list[tuple[str, str]]:
        """(item_id, ledger line) of done items whose record may not be in the ledger yet."""
        rows = await self._db.fetch(
            "SELECT item_id, record FROM batch_items WHERE recorded = 0 AND status = 'done' "
            "AND finished_at < ? ORDER BY finished_at LIMIT ?",
            finished_before,
            limit,
        )
        return [(row["item_id"], row["record"]) for row in rows if row["record"]]

    async def mark_recorded(self, item_ids: Sequence[str]) -> None:
        if item_ids:
            await self._db.executemany(
                "UPDATE batch_items SET recorded = 1 WHERE item_id = ?",
                [(item_id,) for item_id in item_ids],
            )


def claimed(row: dict[str, Any], token: str) -> ClaimedItem:
    return ClaimedItem(
        item_id=row["item_id"],
        job_id=row["job_id"],
        custom_id=row["custom_id"],
        body=orjson.loads(row["body"]),
        attempt=int(row["attempts"]),
        lease_token=token,
    )
