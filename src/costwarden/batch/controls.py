"""Spend controls for batch items: the gateway's own admission, item by item.

Each item is admitted by the gateway's ``Admitter`` over the same ``PolicyEngine`` and state
backend before it is sent — its worst case reserved on every budget and rate bucket of the
job's principal, model and feature/env tags — and settled with its actual cost after (or
released when it never reached an upstream). A Batch API item's worst case is priced at the
batch price it will be billed at.

Where the counters live decides whether that enforces anything across processes:

- ``state.backend: redis``: a standalone worker shares the gateways' counters exactly;
- in-process counters (the embedded default): only a worker running *inside* the gateway
  (``batch.gateway_workers``) shares them (``from_services``). A standalone worker there would
  count only its own spend, so it refuses to start while any control is configured, unless
  told otherwise (``--allow-local-counters``: budgets then hold per process only).

Session breakers (steps, loops, session spend) are an agent's, not a job's: items are
admitted without the session tag and without a loop fingerprint, since a batch legitimately
repeats the same request. Budgets, rate limits and the per-key velocity breaker apply.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson

from costwarden.config import Settings
from costwarden.errors import ConfigError, PolicyRejection, RateLimited
from costwarden.gateway.admission import Admitter, LeaseKeeper
from costwarden.gateway.admission_batch import AdmissionBatcher
from costwarden.gateway.routing import Router
from costwarden.gateway.services import Services
from costwarden.gateway.settlement import SettlementBatcher
from costwarden.gateway.validation import validate
from costwarden.ledger import Ledger
from costwarden.policy.engine import Admission, AdmissionRequest, PolicyEngine
from costwarden.policy.runtime import RuntimeBudgets
from costwarden.pricing import PriceBook, ResolvedPrice, TokenCounter
from costwarden.pricing.resolved import WORST_CASE_SCALE
from costwarden.records import Principal, Tags, UsageRecord
from costwarden.state.base import UNITS_PER_USD, StateBackend
from costwarden.state.factory import build_state_backend

log = logging.getLogger("costwarden.batch")
_SCALE_PER_UNIT = WORST_CASE_SCALE // UNITS_PER_USD
# Who a job submitted without any attribution is admitted as: global budgets still apply.
UNATTRIBUTED = Principal(key_id="batch-unattributed")


@dataclass(frozen=True, slots=True)
class Refused:
    """An admission the policy refused, and when trying again may succeed."""

    error: PolicyRejection
    wait_s: float | None  # None: never as asked (a request larger than a TPM limit)

    @property
    def rate(self) -> bool:
        return isinstance(self.error, RateLimited)


def refused(error: PolicyRejection) -> Refused:
    """The refusal with its wait: the precise one a rate limit gives, else ``Retry-After``."""
    precise = error.details.get("retry_after_s") if error.details else None
    if isinstance(precise, int | float):
        return Refused(error, float(precise))
    header = (error.headers or {}).get("retry-after")
    return Refused(error, float(header) if header else None)


@dataclass(slots=True)
class _Owned:
    """What a standalone worker built for itself, and closes."""

    state: StateBackend
    runtime: RuntimeBudgets
    leases: LeaseKeeper
    settlements: SettlementBatcher
    admissions: AdmissionBatcher | None


class BatchControls:
    def __init__(
        self,
        admitter: Admitter,
        engine: PolicyEngine,
        tokens: TokenCounter,
        leases: LeaseKeeper,
        *,
        shared: bool,
        owned: _Owned | None = None,
    ) -> None:
        self._admitter = admitter
        self._engine = engine
        self._tokens = tokens
        self._leases = leases
        self.shared = shared  # counters are those every gateway of this deployment uses
        self._owned = owned

    @property
    def active(self) -> bool:
        """Some budget, rate limit or breaker is configured (runtime budgets included)."""
        return self._admitter.active

    def unshared_problem(self) -> str | None:
        """Why this worker must not run (controls on counters no gateway sees), or None."""
        if self.shared or not self.active:
            return None
        return (
            "spend controls are configured but state.backend is 'memory': a standalone batch "
            "worker would count only its own spend, so budgets and rate limits would not hold "
            "across it and the gateway. Use state.backend: redis, or run the workers inside "
            "the gateway (batch.gateway_workers: 1), or pass --allow-local-counters to accept "
            "budgets enforced per process only"
        )

    async def admit(
        self,
        api: str,
        body: dict[str, Any],
        record: UsageRecord,
        batch_price: ResolvedPrice | None = None,
    ) -> Admission | Refused:
        """Reserve the item's worst case (at ``batch_price`` when given); sets the output
        bound on ``body`` when it had none, as the gateway does, so the bound holds."""
        request = self._request(api, body, record, batch_price)
        try:
            return await self._admitter.admit(request)
        except PolicyRejection as error:
            return refused(error)

    async def admit_spent(
        self,
        api: str,
        body: dict[str, Any],
        record: UsageRecord,
        batch_price: ResolvedPrice | None = None,
    ) -> Admission:
        """A reservation no limit refuses, for an item sent already (a provider batch taken
        over from a dead worker): its settlement charges the counters what it cost."""
        request = self._request(api, body, record, batch_price)
        request.refine = None
        admission = await self._engine.admit_spent(request)
        self._leases.hold(admission)
        return admission

    def settle(self, admission: Admission, record: UsageRecord) -> None:
        """The try reached an upstream: its actual cost replaces the reservation (unknown
        cost: the reservation is kept as spend, the conservative side)."""
        self._admitter.settle(admission, record)

    async def release(self, admission: Admission) -> None:
        """The try never reached an upstream: nothing was spent."""
        await self._admitter.release(admission)

    def abandon(self, admissions: Iterable[Admission | None]) -> None:
        """Stop renewing reservations whose spend another worker takes over (a provider
        batch left running on stop): they run out after ``state.lease_seconds``, by which
        time the worker that resumes the batch has reserved its items again."""
        for admission in admissions:
            if admission is not None:
                self._leases.drop(admission)

    def _request(
        self,
        api: str,
        body: dict[str, Any],
        record: UsageRecord,
        batch_price: ResolvedPrice | None,
    ) -> AdmissionRequest:
        principal = record.principal or UNATTRIBUTED
        admitted = UsageRecord(
            request_id=record.request_id,
            created_at=record.created_at,
            api=api,
            requested_model=record.requested_model,
            principal=principal,
            tags=Tags(feature=record.tags.feature, env=record.tags.env),
            resolved_model=record.resolved_model,
        )
        bound = validate(api, body).max_output_tokens  # checked at submission already
        request = self._admitter.request(api, body, orjson.dumps(body), admitted, bound)
        request.fingerprint = None
        if batch_price is not None:
            output = request.max_output_tokens or self._engine.config.default_max_output_tokens
            prompt = request.estimated_input_tokens
            request.worst_case_units = worst_units(batch_price, prompt, output)
            request.refine = partial(self._exact_at, api, record, body, batch_price, output)
        return request

    def _exact_at(
        self,
        api: str,
        record: UsageRecord,
        body: dict[str, Any],
        price: ResolvedPrice,
        output: int,
    ) -> tuple[int, int]:
        """The exact prompt and its worst case at ``price`` (asked only near a limit)."""
        model = record.resolved_model or record.requested_model
        exact = self._tokens.estimate_request(api, model, body)
        return exact, worst_units(price, exact, output)

    async def close(self) -> None:
        """Settle what is queued and close what this worker built (not a gateway's)."""
        owned = self._owned
        if owned is None:
            return
        await owned.leases.stop()
        if owned.admissions is not None:
            await owned.admissions.flush()
        await owned.settlements.flush()
        await owned.runtime.stop()
        with contextlib.suppress(Exception):
            await owned.state.aclose()


def worst_units(price: ResolvedPrice, prompt: int, output: int) -> int:
    """A request's worst case at ``price`` in counter units, rounded up (as ``Admitter``)."""
    per_input, per_output, per_request = price.worst_rates
    return -(-(per_input * prompt + per_output * output + per_request) // _SCALE_PER_UNIT)


def from_services(services: Services) -> BatchControls:
    """The gateway's own controls, for workers running inside it: exact on any backend."""
    return BatchControls(
        services.admitter(), services.policy, services.tokens, services.leases, shared=True
    )


async def open_controls(
    settings: Settings, ledger: Ledger, router: Router, prices: PriceBook
) -> BatchControls:
    """A standalone worker's controls, built like the gateway's (``build_services``)."""
    state = build_state_backend(settings.state)
    engine = PolicyEngine(settings.policy, state, lease_seconds=settings.state.lease_seconds)
    runtime = RuntimeBudgets(ledger.store, engine, settings.policy.budget_refresh_s)
    try:
        await runtime.start()  # a worker never runs without the budgets it was given
    except BaseException:
        await state.aclose()
        raise
    leases = LeaseKeeper(engine, settings.state.lease_seconds)
    leases.start()
    settlements = SettlementBatcher(engine)
    remote = settings.state.backend == "redis"
    admissions = AdmissionBatcher(engine, settlements) if remote else None
    tokens = TokenCounter()
    admitter = Admitter(
        engine,
        prices=prices,
        tokens=tokens,
        router=router,
        leases=leases,
        settlements=settlements,
        batcher=admissions,
    )
    owned = _Owned(state, runtime, leases, settlements, admissions)
    return BatchControls(admitter, engine, tokens, leases, shared=remote, owned=owned)


def require_shared(controls: BatchControls, allow_local: bool) -> None:
    """Refuse to run a worker whose counters no gateway shares (see module docstring)."""
    problem = controls.unshared_problem()
    if problem is not None and not allow_local:
        raise ConfigError(problem)
