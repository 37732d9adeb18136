"""What people see: the jobs table and a live progress bar of one job."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from costwarden.batch.jobs import JobStore
from costwarden.batch.models import Job, JobCounts, JobStatus

FINISHED = (JobStatus.DONE.value, JobStatus.FAILED.value)


def jobs_table(rows: Sequence[tuple[Job, JobCounts]]) -> Table:
    table = Table(title="Batch jobs")
    for name, justify in (
        ("job", "left"),
        ("name", "left"),
        ("model", "left"),
        ("mode", "left"),
        ("status", "left"),
        ("items", "right"),
        ("done", "right"),
        ("failed", "right"),
        ("pending", "right"),
        ("budget", "right"),
        ("cost", "right"),
        ("created", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for job, counts in rows:
        table.add_row(
            job.job_id,
            job.name or "-",
            job.model,
            job.mode,
            job.status,
            str(counts.total),
            str(counts.done),
            str(counts.failed + counts.cancelled),
            str(counts.pending),
            f"{job.failure_budget:.1%}",
            f"${counts.cost:f}",
            datetime.fromtimestamp(job.created_at, UTC).strftime("%Y-%m-%d %H:%M"),
        )
    return table


def describe(counts: JobCounts) -> str:
    return (
        f"failed {counts.failed + counts.cancelled} · in flight "
        f"{counts.leased + counts.submitted} · ${counts.cost:f}"
    )


async def watch(
    jobs: JobStore, job_id: str, console: Console, interval_s: float = 0.5
) -> tuple[Job, JobCounts]:
    """Show a progress bar until the job is finished; its last state."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(job_id, total=None, detail="")
        while True:
            job = await jobs.get(job_id)
            if job is None:
                raise LookupError(f"no batch job {job_id}")
            counts = await jobs.counts(job_id)
            progress.update(
                task, total=counts.total, completed=counts.finished, detail=describe(counts)
            )
            if job.status in FINISHED:
                return job, counts
            await asyncio.sleep(interval_s)
