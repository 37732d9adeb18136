"""What a worker's lanes share: the queue, the ledger, the upstream client, prices, and the
spend controls every item is admitted by."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

import aiohttp

from costwarden.batch.admit import JobGate
from costwarden.batch.backends import BatchQueue
from costwarden.batch.completer import Completer
from costwarden.batch.config import BatchConfig
from costwarden.batch.controls import BatchControls
from costwarden.batch.models import Job
from costwarden.batch.pricing import BatchPricer
from costwarden.batch.recording import Outcomes
from costwarden.config import Settings
from costwarden.gateway.upstream import UpstreamCaller
from costwarden.ledger import Ledger


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    job_id: str | None = None  # None: every job (gateway intake included)
    concurrency: int = 16  # requests in flight (direct lane)
    notice_s: float = 30.0  # SIGTERM: finish in-flight work within this, release the rest
    exit_when_idle: bool = False  # also leave when no job has work left (not only on SIGTERM)
    idle_poll_s: float = 0.2  # how often an idle worker looks for work
    # Run with controls on in-process counters no gateway shares (budgets then hold per
    # process only); see controls.py.
    allow_local_counters: bool = False


def worker_id() -> str:
    """Names the lease holder in the queue: host and pid for people, random for uniqueness."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


@dataclass(slots=True)
class WorkerContext:
    settings: Settings
    queue: BatchQueue
    ledger: Ledger
    session: aiohttp.ClientSession
    caller: UpstreamCaller
    api_keys: dict[str, str | None]
    pricer: BatchPricer
    outcomes: Outcomes
    completer: Completer
    controls: BatchControls  # admission of each item (the gateway's policy engine)
    gate: JobGate  # jobs paused or rate-limited after a refusal
    owner: str = field(default_factory=worker_id)
    _jobs: dict[str, Job] = field(default_factory=dict)  # what a job asks never changes

    @property
    def config(self) -> BatchConfig:
        return self.settings.batch

    async def job(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            job = await self.queue.jobs.get(job_id)
            if job is None:
                raise LookupError(f"batch job {job_id} does not exist")
            self._jobs[job_id] = job
        return job
