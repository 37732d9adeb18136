"""``costwarden batch …``: submit a file, run workers, watch, read the results.

costwarden batch submit FILE.jsonl [--model M] [--name N] [--failure-budget 0.01]
                                   [--mode direct|batch_api] [--user U --team T ...]
costwarden batch worker [--job ID] [--concurrency N] [--notice-s 30] [--exit-when-idle]
                        [--allow-local-counters]
costwarden batch status [JOB]
costwarden batch wait JOB
costwarden batch results JOB -o results.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from costwarden.batch.backends import BatchQueue, open_queue
from costwarden.batch.context import WorkerOptions
from costwarden.batch.models import JobSpec
from costwarden.batch.progress import FINISHED, jobs_table, watch
from costwarden.batch.submit import output_lines, parse_lines
from costwarden.batch.worker import run_worker
from costwarden.config import Settings
from costwarden.providers.base import MESSAGES
from costwarden.records import Principal, Tags


def add_batch_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    batch = sub.add_parser("batch", help="deferred work: submit, run, results", parents=[common])
    verbs = batch.add_subparsers(dest="batch_command", required=True)
    submit = verbs.add_parser("submit", help="queue a JSONL file of requests", parents=[common])
    submit.add_argument("file", type=Path)
    submit.add_argument("--model", help="model of every request (default: the file's)")
    submit.add_argument("--name")
    submit.add_argument("--failure-budget", type=float, help="share of items allowed to fail")
    submit.add_argument("--mode", choices=("direct", "batch_api"))
    submit.add_argument("--max-attempts", type=int)
    for name in ("user", "team", "key-id", "feature", "env"):
        submit.add_argument(f"--{name}", help=f"attribute the spend to this {name}")
    worker = verbs.add_parser("worker", help="send queued items", parents=[common])
    worker.add_argument("--job", help="only this job; exit when it is finished")
    worker.add_argument("--concurrency", type=int)
    worker.add_argument("--notice-s", type=float, help="SIGTERM: drain within this")
    worker.add_argument("--exit-when-idle", action="store_true")
    worker.add_argument("--progress", action="store_true", help="progress bar (with --job)")
    worker.add_argument(
        "--allow-local-counters",
        action="store_true",
        help="run with spend controls on state.backend memory: budgets and rate limits then "
        "hold per process only (see docs/batch.md, Spend controls)",
    )
    status = verbs.add_parser("status", help="jobs and their counts", parents=[common])
    status.add_argument("job", nargs="?")
    wait = verbs.add_parser("wait", help="progress bar until a job is finished", parents=[common])
    wait.add_argument("job")
    results = verbs.add_parser("results", help="write the results file", parents=[common])
    results.add_argument("job")
    results.add_argument("-o", "--output", type=Path, required=True)


def batch_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.batch_command == "worker":
        return asyncio.run(_worker(args, settings))
    return asyncio.run(_with_queue(args, settings))


async def _with_queue(args: argparse.Namespace, settings: Settings) -> int:
    queue = await open_queue(settings)
    try:
        verb = args.batch_command
        if verb == "submit":
            return await _submit(args, settings, queue)
        if verb == "status":
            return await _status(args, queue)
        if verb == "wait":
            job, _ = await watch(queue.jobs, args.job, Console(stderr=True))
            return 0 if job.status == "done" else 1
        return await _results(args, queue)
    finally:
        await queue.close()


async def _submit(args: argparse.Namespace, settings: Settings, queue: BatchQueue) -> int:
    config = settings.batch
    with args.file.open("rb") as handle:
        parsed = parse_lines(handle, args.model)
    model = settings.model(parsed.model)
    if model is None:
        raise ValueError(f"model {parsed.model!r} is not configured (see 'models' in the config)")
    mode = args.mode or config.default_mode
    if mode == "batch_api" and (parsed.api == MESSAGES or model.endpoints[0].provider != "openai"):
        raise ValueError("--mode batch_api needs a model served over the OpenAI protocol")
    principal = None
    if args.user or args.team or args.key_id:
        principal = Principal(key_id=args.key_id or "batch-cli", user=args.user, team=args.team)
    spec = JobSpec(
        model=parsed.model,
        api=parsed.api,
        mode=mode,
        failure_budget=config.failure_budget
        if args.failure_budget is None
        else args.failure_budget,
        max_attempts=args.max_attempts or config.max_attempts,
        name=args.name or args.file.name,
        principal=principal,
        tags=Tags(feature=args.feature, env=args.env),
    )
    if not 0 <= spec.failure_budget <= 1:
        raise ValueError("--failure-budget is a share between 0 and 1 (0.01 = 1 %)")
    job = await queue.jobs.create(spec)
    added = await queue.jobs.add_items(job.job_id, parsed.items)
    print(f"job id:  {job.job_id}\nitems:   {len(added)}\nmodel:   {job.model} ({mode})")
    return 0


async def _status(args: argparse.Namespace, queue: BatchQueue) -> int:
    if args.job:
        job = await queue.jobs.get(args.job)
        if job is None:
            print(f"no batch job {args.job}", file=sys.stderr)
            return 1
        jobs = [job]
    else:
        jobs = await queue.jobs.recent()
    rows = [(job, await queue.jobs.counts(job.job_id)) for job in jobs]
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(jobs_table(rows))
    for job, _ in rows:
        if job.note:
            console.print(f"{job.job_id}: {job.note}")
    return 0


async def _results(args: argparse.Namespace, queue: BatchQueue) -> int:
    job = await queue.jobs.get(args.job)
    if job is None:
        print(f"no batch job {args.job}", file=sys.stderr)
        return 1
    items = await queue.jobs.items(job.job_id)
    with args.output.open("wb") as out:
        out.writelines(output_lines(items))
    done = sum(1 for item in items if item.status == "done")
    print(f"{len(items)} results ({done} done) written to {args.output}")
    if job.status not in FINISHED:
        print(f"job {job.job_id} is still {job.status}: results so far", file=sys.stderr)
    return 0


async def _worker(args: argparse.Namespace, settings: Settings) -> int:
    config = settings.batch
    options = WorkerOptions(
        job_id=args.job,
        concurrency=args.concurrency or config.concurrency,
        notice_s=config.notice_s if args.notice_s is None else args.notice_s,
        exit_when_idle=args.exit_when_idle,
        allow_local_counters=args.allow_local_counters,
    )
    if not (args.progress and args.job):
        return await run_worker(settings, options)
    queue = await open_queue(settings)
    progress = asyncio.create_task(watch(queue.jobs, args.job, Console(stderr=True)))
    try:
        return await run_worker(settings, options)
    finally:
        progress.cancel()
        await asyncio.gather(progress, return_exceptions=True)
        await queue.close()
