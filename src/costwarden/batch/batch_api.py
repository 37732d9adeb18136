"""The Batch API lane: items sent as provider batches (OpenAI's format), priced at the batch
rate, each result mapped back to its item by ``custom_id`` (the item id).

One submission at a time per lane: claim up to ``batch_api.max_items`` queued items of a
``batch_api`` job (or resume a submission whose worker died), reserve each item's worst case
at the batch price (the refused ones go back to the queue, see admit.py), write the input
JSONL of the admitted ones, upload it, create the batch (metadata names the submission),
store the batch id, then poll until the batch ends, heartbeating the lease meanwhile; each
item's reservation is settled with its cost as its result comes back. A stopping worker
releases its submission: the provider batch runs on and the next worker to claim it polls the
same batch, never a copy (and reserves its items again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

from costwarden.batch.admit import admit_group, readmit_group
from costwarden.batch.context import WorkerContext, WorkerOptions
from costwarden.batch.models import ClaimedItem, Job, Outcome, Submission
from costwarden.batch.openai_batch import (
    SUBMISSION_KEY,
    TERMINAL,
    BatchApiClient,
    BatchApiError,
    input_line,
    result_lines,
)
from costwarden.batch.recording import new_record, price_attempt
from costwarden.config import EndpointConfig, ModelConfig
from costwarden.policy.engine import Admission
from costwarden.records import Attempt, UsageRecord, utcnow

log = logging.getLogger("costwarden.batch")


@dataclass(frozen=True, slots=True)
class _Finished:
    """A provider batch that ended, with what is needed to settle its items."""

    job: Job
    model: ModelConfig
    endpoint: EndpointConfig
    batch: dict[str, Any]
    lines: dict[str, dict[str, Any]]  # custom_id (= item id) → output or error line
    t0: float


class _Stopped(Exception):
    """The worker was asked to stop while a provider batch was still running."""


class BatchApiLane:
    def __init__(self, ctx: WorkerContext, options: WorkerOptions) -> None:
        self._ctx = ctx
        self._options = options
        self.idle = False

    async def run(self, stop: asyncio.Event) -> None:
        ctx = self._ctx
        while not stop.is_set():
            submission = await ctx.queue.submissions.claim(
                ctx.owner,
                ctx.config.batch_api.max_items,
                ctx.config.lease_s,
                self._options.job_id,
                ctx.gate.paused_jobs(),
            )
            self.idle = submission is None
            if submission is None:
                await _sleep_unless(stop, self._options.idle_poll_s)
                continue
            try:
                await self._process(submission, stop)
            except (_Stopped, BatchApiError, aiohttp.ClientError, TimeoutError) as exc:
                if not isinstance(exc, _Stopped):
                    log.warning("batch: submission %s: %s", submission.submission_id, exc)
                await ctx.queue.submissions.release(submission)
                await _sleep_unless(stop, self._options.idle_poll_s)
            except Exception:  # e.g. the counters' Redis is down: the submission waits
                log.exception("batch: submission %s failed", submission.submission_id)
                await ctx.queue.submissions.release(submission)
                await _sleep_unless(stop, self._options.idle_poll_s)

    async def _process(self, sub: Submission, stop: asyncio.Event) -> None:
        ctx = self._ctx
        job = await ctx.job(sub.job_id)
        model = ctx.settings.model(job.model)
        if model is None:
            raise BatchApiError(f"model {job.model!r} is not configured on this worker")
        endpoint = model.endpoints[0]
        client = BatchApiClient(ctx.session, endpoint, ctx.api_keys.get(endpoint.name))
        records = {item.item_id: new_record(job, item) for item in sub.items}
        t0 = time.perf_counter()
        batch, held = await self._provider_batch(client, sub, job, model, records)
        if batch is None:
            return  # lease lost, or every item refused: whoever holds them carries on
        try:
            while batch["status"] not in TERMINAL:
                await _sleep_unless(stop, ctx.config.batch_api.poll_interval_s)
                if stop.is_set():
                    raise _Stopped
                batch = await client.retrieve(batch["id"])
        except BaseException:
            ctx.controls.abandon(held.values())  # the batch runs on: its next worker reserves
            raise
        done = _Finished(job, model, endpoint, batch, await _results(client, batch), t0)
        left = await ctx.queue.submissions.items_left(sub)
        outcomes = [self._outcome(done, item, records[item.item_id]) for item in left]
        await self._settle(held, done, records)
        await asyncio.gather(*(ctx.completer.finish(o, r) for o, r in outcomes))
        await ctx.queue.submissions.close(sub)

    async def _settle(
        self, held: dict[str, Admission | None], done: _Finished, records: dict[str, UsageRecord]
    ) -> None:
        """Each item's reservation: replaced by its cost when the batch answered it, returned
        when the batch ended without it (expired, cancelled, failed validation)."""
        for item_id, admission in held.items():
            if admission is None:
                continue
            if item_id in done.lines:
                self._ctx.controls.settle(admission, records[item_id])
            else:
                await self._ctx.controls.release(admission)

    async def _provider_batch(
        self,
        client: BatchApiClient,
        sub: Submission,
        job: Job,
        model: ModelConfig,
        records: dict[str, UsageRecord],
    ) -> tuple[dict[str, Any] | None, dict[str, Admission | None]]:
        """The provider batch of the submission — created now, or found again if a dead
        worker created it (whether or not it lived to store the id) — and its items'
        reservations."""
        ctx = self._ctx
        price = ctx.pricer.batch_api(model, model.endpoints[0], utcnow())
        found = None
        if sub.provider_batch_id is not None:
            found = await client.retrieve(sub.provider_batch_id)
        elif sub.resumed:
            found = await client.find(sub.submission_id)
        if found is not None:
            held = await readmit_group(ctx, job, list(sub.items), records, price)
        else:
            held = await admit_group(ctx, job, sub.items, records, price)
            if not held:
                await ctx.queue.submissions.close(sub)
                return None, {}
            try:
                admitted = {i: r for i, r in records.items() if i in held}
                found = await self._create(client, sub, job, model, admitted)
            except BaseException:
                await asyncio.gather(*(ctx.controls.release(a) for a in held.values() if a))
                raise
        if not await ctx.queue.submissions.submitted(sub, str(found["id"])):
            ctx.controls.abandon(held.values())
            return None, {}
        return found, held

    async def _create(
        self,
        client: BatchApiClient,
        sub: Submission,
        job: Job,
        model: ModelConfig,
        records: dict[str, UsageRecord],
    ) -> dict[str, Any]:
        """Upload the items of ``records`` (those admitted) and create the provider batch."""
        items = [item for item in sub.items if item.item_id in records]
        for item in items:
            self._ctx.ledger.append_pending(records[item.item_id])  # before any upstream
        upstream_model = model.endpoints[0].upstream_model or model.name
        content = b"".join(
            input_line(item.item_id, job.api, {**_unstreamed(item), "model": upstream_model})
            for item in items
        )
        file_id = await client.upload(content, f"{sub.submission_id}.jsonl")
        metadata = {SUBMISSION_KEY: sub.submission_id, "costwarden_job": job.job_id}
        window = self._ctx.config.batch_api.completion_window
        return await client.create(file_id, job.api, metadata, window)

    def _outcome(
        self, done: _Finished, item: ClaimedItem, record: UsageRecord
    ) -> tuple[Outcome, UsageRecord]:
        outcomes, model, endpoint = self._ctx.outcomes, done.model, done.endpoint
        line = done.lines.get(item.item_id)
        response = (line or {}).get("response") or {}
        status = response.get("status_code")
        attempt = Attempt(
            model=model.name,
            provider=endpoint.provider,
            endpoint=endpoint.name,
            upstream_model=endpoint.upstream_model or model.name,
            started_at=0.0,
            http_status=status if isinstance(status, int) else None,
            upstream_request_id=response.get("request_id"),
        )
        record.attempts.append(attempt)
        if isinstance(status, int) and status < 400:
            price = self._ctx.pricer.batch_api(model, endpoint, _moment(done.batch))
            body = response.get("body")
            price_attempt(attempt, done.job.api, body, price, endpoint.provider)
            result = orjson.dumps(body).decode()
            return outcomes.done(item, record, done.t0, status, result), record
        error = _line_error(line, done.batch, status)
        attempt.error = error[1]
        return outcomes.failed(done.job, item, record, error, done.t0), record


def _unstreamed(item: ClaimedItem) -> dict[str, Any]:
    return {k: v for k, v in item.body.items() if k not in ("stream", "stream_options")}


def _moment(batch: dict[str, Any]) -> datetime:
    """The batch's creation time (the price in force then applies); now if it gave none."""
    epoch = batch.get("created_at")
    return datetime.fromtimestamp(epoch, UTC) if isinstance(epoch, int | float) else utcnow()


def _line_error(
    line: dict[str, Any] | None, batch: dict[str, Any], status: Any
) -> tuple[str, str, int | None]:
    if line is None:  # the batch ended without this request: expired, cancelled or failed
        failed = batch["status"] == "failed"
        why = orjson.dumps(batch.get("errors")).decode() if failed else batch["status"]
        return (
            "batch_" + batch["status"],
            f"provider batch {batch['id']}: {why}",
            400 if failed else None,
        )
    error = line.get("error") or ((line.get("response") or {}).get("body") or {}).get("error") or {}
    message = str(error.get("message") or "request failed in the provider batch")
    return (
        str(error.get("code") or "upstream_error"),
        message,
        status if isinstance(status, int) else None,
    )


async def _results(client: BatchApiClient, batch: dict[str, Any]) -> dict[str, dict[str, Any]]:
    lines: dict[str, dict[str, Any]] = {}
    for key in ("error_file_id", "output_file_id"):  # output last: a success wins
        file_id = batch.get(key)
        if file_id:
            for line in result_lines(await client.content(file_id)):
                lines[line["custom_id"]] = line
    return lines


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
