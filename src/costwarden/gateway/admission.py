"""Admission and settlement of one request against the spend controls.

Before the upstream call: estimate the prompt, bound the output (and make the upstream call
carry that bound, so the estimate really is a worst case), price the worst case at the dearest
target the request may reach (fallbacks included), and reserve it atomically on every budget,
rate limit and breaker that applies. After the call: replace the reservation by the actual
cost, or return it if the request never reached an upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import orjson

from costwarden.errors import InvalidRequest
from costwarden.gateway.admission_batch import AdmissionBatcher, AdmissionSlot, InProcessAdmissions
from costwarden.gateway.routing import Router
from costwarden.gateway.settlement import SettlementBatcher
from costwarden.policy.engine import Admission, AdmissionRequest, PolicyEngine
from costwarden.pricing import PriceBook, TokenCounter
from costwarden.pricing.genai import ALWAYS_FROM, ALWAYS_UNTIL, Window
from costwarden.pricing.resolved import WORST_CASE_SCALE
from costwarden.providers.base import CHAT, EMBEDDINGS
from costwarden.records import UsageRecord
from costwarden.state.base import MAX_UNITS, UNITS_PER_USD, units_to_usd

log = logging.getLogger("costwarden.gateway")

# The prompt is reserved at an upper bound of its tokens: each text's UTF-8 byte length (a BPE
# token is at least one byte; ``TokenCounter.bound_request``), which costs no tokenizer call —
# in the live gateway a tiktoken call cost ~25-35 µs of the ~200 µs admission, GIL hand-off to
# the ledger thread included. Only when a budget or rate limit refuses the bound is the prompt
# counted exactly and the admission retried, so near a limit the reservation is exact. Above
# this many body bytes the exact count is skipped even then (a 1 MB RAG prompt would cost
# ~100 ms of CPU), and the body size bounds it; settlement corrects every reservation.
_TOKENISE_BELOW_BYTES = 32 * 1024
_MESSAGE_OVERHEAD = 4  # tokens per message a chat format adds beyond the text itself
_SCALE_PER_UNIT = WORST_CASE_SCALE // UNITS_PER_USD

# Reasoning families refuse ``max_tokens`` on chat and need ``max_completion_tokens``.
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")

# Fields that change between identical agent steps without changing what is asked.
_VOLATILE_FIELDS = frozenset(("stream", "stream_options", "user", "metadata", "x_fake"))

# What the gateway asks to admit: (api, parsed body, raw body, record, client's output bound,
# more models to reserve for); the arguments of ``Admitter.request``.
_Ask = tuple[str, dict[str, Any], bytes, UsageRecord, int | None, tuple[str, ...]]


class LeaseKeeper:
    """Renews the reservations of requests that are still running.

    A reservation's lease frees a dead replica's budget; a live request must therefore never
    outlive its lease, whether it waits on a slow non-streamed answer, a backoff or a long
    stream. One task per replica renews every held lease each third of a lease period, instead
    of a timer per request.
    """

    def __init__(self, engine: PolicyEngine, lease_seconds: float) -> None:
        self._engine = engine
        self._every = lease_seconds / 3
        self._held: dict[str, Admission] = {}
        self._task: asyncio.Task[None] | None = None

    def hold(self, admission: Admission) -> None:
        self._held[admission.lease_id] = admission

    def drop(self, admission: Admission) -> None:
        self._held.pop(admission.lease_id, None)

    @property
    def holding(self) -> bool:
        """Some admitted request has not finished yet."""
        return bool(self._held)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lease-keeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def renew_all(self) -> int:
        renewed = 0
        for admission in list(self._held.values()):
            try:
                renewed += await self._engine.renew(admission)
            except Exception:
                log.exception("renewing reservation %s failed", admission.lease_id)
        return renewed

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            await self.renew_all()


class Admitter:
    def __init__(
        self,
        engine: PolicyEngine,
        *,
        prices: PriceBook,
        tokens: TokenCounter,
        router: Router,
        leases: LeaseKeeper,
        settlements: SettlementBatcher,
        batcher: AdmissionBatcher | None = None,
    ) -> None:
        self._engine = engine
        self._leases = leases
        self._settlements = settlements
        self._admit = engine.admit if batcher is None else batcher.admit
        self._prices = prices
        self._tokens = tokens
        self._router = router
        self._detect_loops = engine.config.breakers.session.loop_repeat_k is not None
        self._default_output = engine.config.default_max_output_tokens
        self._worst_rates: dict[str, _WorstRates] = {}  # per model; fixed by the config
        self._immediate = batcher is None and engine.local
        self._in_process: InProcessAdmissions[_Ask] | None = (
            InProcessAdmissions(self._admit_ask) if self._immediate else None
        )

    @property
    def active(self) -> bool:
        return self._engine.has_controls

    @property
    def immediate(self) -> bool:
        """Admission never waits (a backend in this process, no batcher): call ``admit_now``."""
        return self._immediate

    async def reserve(
        self,
        api: str,
        body: dict[str, Any],
        raw: bytes,
        record: UsageRecord,
        max_output: int | None,
        *,
        slot: AdmissionSlot,
        also: tuple[str, ...] = (),
    ) -> Admission:
        """What the gateway calls: ``request`` + ``admit``, the admission also put in ``slot``
        (raises the refusal).

        In process, while other requests are in flight, it is queued and taken with the rest
        of this event-loop iteration's admissions, back to back (see ``admission_batch``); a
        request alone has nothing to be batched with and is admitted at once.

        ``also``: models the request may call as well as its own (a cascade's dearer tiers);
        their worst cases are added to the reservation."""
        ask = (api, body, raw, record, max_output, also)
        batch = self._in_process
        if batch is None:
            slot.admission = admission = await self.admit(_request(self, ask))
        elif batch.queued or self._leases.holding:
            admission = await batch.admit(ask, slot)
        else:
            slot.admission = admission = self._admit_ask(ask)
        return admission

    def _admit_ask(self, ask: _Ask) -> Admission:
        return self.admit_now(_request(self, ask))

    async def admit(self, request: AdmissionRequest) -> Admission:
        """Reserve the worst case of ``request`` (see ``request``) and keep its lease alive."""
        admission = await self._admit(request)
        self._leases.hold(admission)
        return admission

    def admit_now(self, request: AdmissionRequest) -> Admission:
        """``admit`` when ``immediate``, with no coroutine around it."""
        admission = self._engine.admit_now(request)
        self._leases.hold(admission)
        return admission

    def settle(self, admission: Admission, record: UsageRecord) -> None:
        """Queue the settlement of the actual cost (batched, see ``settlement``). A request
        that never reached an upstream is ``release``d instead."""
        self._leases.drop(admission)
        self._settlements.settle(admission, record.cost, record.usage.total_tokens)

    async def release(self, admission: Admission) -> None:
        self._leases.drop(admission)
        try:
            await self._engine.release(admission)
        except Exception:
            log.exception("releasing reservation %s failed", admission.lease_id)

    def request(
        self,
        api: str,
        body: dict[str, Any],
        raw: bytes,
        record: UsageRecord,
        max_output: int | None,
        *,
        also: tuple[str, ...] = (),
    ) -> AdmissionRequest:
        """What to admit for ``body`` (parsed from ``raw``). When the client set no output
        bound, ``body`` gets the policy's default one: what is reserved is what the upstream
        call may generate."""
        assert record.principal is not None and record.resolved_model is not None
        model = record.resolved_model
        bound = 1 if api == EMBEDDINGS else max_output
        at = record.created_at
        refine: Callable[[], tuple[int, int]] | None = None
        if len(raw) < _TOKENISE_BELOW_BYTES:
            prompt = self._tokens.bound_request(api, body)
            # A partial, not a closure: a closure's cells would slow every request's path here.
            refine = partial(self._exact, api, model, body, bound, at, also=also)
        else:
            prompt = _size_bound(body, len(raw))
        worst = self._worst_cases(model, also, prompt, bound, at)
        if worst >= MAX_UNITS:
            # Above any cap a budget can hold (~$90M): no budget could admit it, and the
            # counters could not even hold its reservation exactly.
            raise InvalidRequest(
                f"an output bound of {bound} tokens puts this request's worst-case cost "
                f"above {units_to_usd(MAX_UNITS - 1):.0f} USD; ask for fewer output tokens",
                param="max_tokens",
            )
        request = AdmissionRequest(
            principal=record.principal,
            tags=record.tags,
            model=model,
            estimated_input_tokens=prompt,
            max_output_tokens=bound,
            worst_case_units=worst,
            fingerprint=request_fingerprint(body, raw) if self._detect_loops else None,
            refine=refine,
        )
        if bound is None:
            upstream = self._router.targets(model)[0].endpoint.upstream_model or model
            body[_output_field(api, upstream)] = self._default_output
        return request

    def _exact(
        self,
        api: str,
        model: str,
        body: dict[str, Any],
        bound: int | None,
        at: datetime,
        *,
        also: tuple[str, ...],
    ) -> tuple[int, int]:
        """The prompt counted exactly, and its worst case: asked only when a limit refused the
        bound (``AdmissionRequest.refine``)."""
        exact = self._tokens.estimate_request(api, model, body)
        return exact, self._worst_cases(model, also, exact, bound, at)

    def _worst_cases(
        self, model: str, also: tuple[str, ...], prompt: int, bound: int | None, at: datetime
    ) -> int:
        worst = self._worst_case(model, prompt, bound, at)
        for other in also:
            worst += self._worst_case(other, prompt, bound, at)
        return worst

    def _worst_case(self, model: str, prompt: int, max_output: int | None, now: datetime) -> int:
        """The dearest price among the targets this request may reach, at the prices in force
        when it arrived (those it is billed at), in counter units rounded up."""
        output = max_output or self._default_output
        rates = self._worst_rates.get(model)
        if rates is None or not rates.window.contains(now):
            rates = self._worst_rates[model] = self._reachable_rates(model, now)
        worst = 0
        for per_input, per_output, per_request in rates.rates:
            cost = per_input * prompt + per_output * output + per_request
            worst = max(worst, cost)
        return -(-worst // _SCALE_PER_UNIT)

    def _reachable_rates(self, model: str, now: datetime) -> _WorstRates:
        """The worst-case rates of every (model, endpoint) a request for ``model`` may go to,
        fallbacks included, whatever their health, and until when they all hold. Unpriced
        targets are left out: they are rejected before this by default."""
        chain = (model, *self._router.fallbacks(model))
        rates = []
        valid_from, valid_until = ALWAYS_FROM, ALWAYS_UNTIL
        for target in (t for name in chain for t in self._router.targets(name)):
            price, window = self._prices.resolution(target.model, target.endpoint, now)
            valid_from = max(valid_from, window.valid_from)
            valid_until = min(valid_until, window.valid_until)
            if price is not None:
                rates.append(price.worst_rates)
        return _WorstRates(tuple(rates), Window(valid_from, valid_until))


@dataclass(frozen=True, slots=True)
class _WorstRates:
    rates: tuple[tuple[int, int, int], ...]  # ``ResolvedPrice.worst_rates`` of each target
    window: Window  # when every one of them holds


def _request(admitter: Admitter, ask: _Ask) -> AdmissionRequest:
    api, body, raw, record, max_output, also = ask
    return admitter.request(api, body, raw, record, max_output, also=also)


def request_fingerprint(body: dict[str, Any], raw: bytes) -> str:
    """The request with what changes between identical agent steps left out, hashed.

    A body without volatile fields (the usual case) is hashed as it came: a looping agent
    resends the same bytes, and re-serialising it canonically costs more than the hash.
    Otherwise the rest of it is hashed in a canonical form (sorted keys)."""
    if body.keys().isdisjoint(_VOLATILE_FIELDS):
        return hashlib.blake2b(raw, digest_size=16).hexdigest()
    stable = {k: v for k, v in body.items() if k not in _VOLATILE_FIELDS}
    digest = hashlib.blake2b(orjson.dumps(stable, option=orjson.OPT_SORT_KEYS), digest_size=16)
    return digest.hexdigest()


def _size_bound(body: dict[str, Any], size: int) -> int:
    """A prompt too large to tokenise on the hot path, bounded by its byte length."""
    messages = body.get("messages")
    overhead = _MESSAGE_OVERHEAD * (len(messages) + 1) if isinstance(messages, list) else 0
    return size + overhead


def _output_field(api: str, model: str) -> str:
    if api == CHAT and model.startswith(_REASONING_PREFIXES):
        return "max_completion_tokens"
    return "max_tokens"
