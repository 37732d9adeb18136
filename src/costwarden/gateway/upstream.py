"""Calling upstreams: retries with backoff, fallbacks, and one ``Attempt`` per try.

A try is retried (on the next target the router plans) on a connection error, a timeout, or a
retryable status, and only while nothing has been sent to the client — the caller hands back
an open response for streams, so retrying stops the moment streaming starts. Every try,
failed or not, is appended to the request's record so the ledger shows what happened.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from costwarden.config import RetryConfig
from costwarden.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from costwarden.gateway.routing import Router, Target
from costwarden.providers.registry import adapter_for
from costwarden.records import Attempt, UsageRecord

if TYPE_CHECKING:
    from costwarden.gateway.unary_usage import UnaryPricer

# Response headers that describe the hop, not the payload; never passed through.
_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "date",
        "server",
        "set-cookie",
        "upgrade",
        "x-request-id",  # ours replaces it; the upstream's is kept on the attempt
    }
)


@dataclass(slots=True)
class UpstreamResult:
    target: Target
    attempt: Attempt
    status: int
    headers: list[tuple[bytes, bytes]]  # pass-through response headers
    body: bytes | None  # the whole body (non-stream, or an error of a stream)
    response: aiohttp.ClientResponse | None  # open, for a successful stream


@dataclass(slots=True)
class CallSpec:
    api: str
    body: dict[str, Any]
    stream: bool
    client_headers: Mapping[str, str]  # provider headers the client asked to forward


class _RetryableFailure(Exception):
    def __init__(self, error: Exception, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class UpstreamCaller:
    def __init__(
        self,
        router: Router,
        *,
        session: aiohttp.ClientSession,
        retry: RetryConfig,
        api_keys: Mapping[str, str | None],
        timeouts: tuple[float, float],
        rng: random.Random | None = None,
        pricer: UnaryPricer | None = None,
    ) -> None:
        self._router = router
        self._pricer = pricer  # bills a 2xx body cut short before it is retried
        self._session = session
        self._retry = retry
        self._retry_statuses = frozenset(retry.retry_statuses)
        self._api_keys = api_keys
        connect_s, request_s = timeouts
        self._unary_timeout = aiohttp.ClientTimeout(total=request_s, sock_connect=connect_s)
        # Streams may run long; bound the silence between chunks rather than the whole call.
        self._stream_timeout = aiohttp.ClientTimeout(sock_connect=connect_s, sock_read=request_s)
        self._rng = rng or random.Random()

    async def call(self, spec: CallSpec, record: UsageRecord, t0: float) -> UpstreamResult:
        """Try planned targets until one answers non-retryably; raise if none could."""
        last: _RetryableFailure | None = None
        last_result: UpstreamResult | None = None
        tries = 0
        plan = list(self._router.plan(record.resolved_model or record.requested_model))
        # Fewer targets than attempts: go round again (a lone endpoint still gets its retries).
        for target in itertools.islice(itertools.cycle(plan), self._retry.max_attempts):
            if last is not None:
                await asyncio.sleep(self._backoff(tries, last.retry_after))
            tries += 1
            try:
                return await self._attempt(target, spec, record, t0)
            except _RetryableFailure as failure:
                last = failure
                if isinstance(failure.error, _StatusFailure):
                    last_result = failure.error.result
        if last_result is not None:  # every try answered with an error: pass the last through
            return last_result
        if last is not None and isinstance(last.error, TimeoutError):
            raise UpstreamTimeout(f"upstream timed out after {tries} attempt(s)")
        detail = f": {last.error}" if last is not None else ""
        raise UpstreamUnavailable(f"no upstream reachable after {tries} attempt(s){detail}")

    def _backoff(self, tries: int, retry_after: float | None) -> float:
        cap = self._retry.backoff_max_s
        if retry_after is not None and 0 <= retry_after <= cap:
            return retry_after
        # Full jitter: spreads retries of many clients instead of synchronising them.
        return self._rng.random() * min(cap, self._retry.backoff_base_s * (2.0 ** (tries - 1)))

    async def _attempt(
        self, target: Target, spec: CallSpec, record: UsageRecord, t0: float
    ) -> UpstreamResult:
        endpoint = target.endpoint
        adapter = adapter_for(endpoint.provider)
        body = dict(spec.body)
        body["model"] = endpoint.upstream_model or target.model.name
        request = adapter.prepare(
            spec.api, endpoint, body, self._api_keys.get(endpoint.name), spec.stream
        )
        if spec.client_headers:
            request.headers.update(spec.client_headers)
        attempt = Attempt(
            model=target.model.name,
            provider=endpoint.provider,
            endpoint=endpoint.name,
            upstream_model=body["model"],
            started_at=round(time.perf_counter() - t0, 6),
        )
        record.attempts.append(attempt)
        started = time.perf_counter()
        try:
            response = await self._session.post(
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=self._stream_timeout if spec.stream else self._unary_timeout,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            attempt.latency_ms = (time.perf_counter() - started) * 1000
            attempt.error = f"{type(exc).__name__}: {exc}"[:500]
            self._router.record_failure(target)
            raise _RetryableFailure(exc) from None
        attempt.http_status = response.status
        attempt.upstream_request_id = response.headers.get("x-request-id") or response.headers.get(
            "request-id"
        )
        headers = _passthrough_headers(response)
        if response.status < 300 and spec.stream:
            return UpstreamResult(target, attempt, response.status, headers, None, response)
        return await self._finish_unary(
            target, spec, record, response, headers=headers, started=started
        )

    async def _finish_unary(
        self,
        target: Target,
        spec: CallSpec,
        record: UsageRecord,
        response: aiohttp.ClientResponse,
        *,
        headers: list[tuple[bytes, bytes]],
        started: float,
    ) -> UpstreamResult:
        attempt = record.attempts[-1]  # this try's, appended by _attempt
        chunks: list[bytes] = []
        try:
            async for chunk in response.content.iter_any():
                chunks.append(chunk)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            attempt.latency_ms = (time.perf_counter() - started) * 1000
            attempt.error = f"{type(exc).__name__}: {exc}"[:500]
            self._router.record_failure(target)
            if response.status < 300 and self._pricer is not None:
                # The upstream generated (and bills) this answer; count what arrived of it.
                self._pricer.price(spec, target, attempt, record, b"".join(chunks))
            raise _RetryableFailure(exc) from None
        finally:
            response.release()
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        attempt.latency_ms = (time.perf_counter() - started) * 1000
        result = UpstreamResult(target, attempt, response.status, headers, body, None)
        status = response.status
        if status < 400:
            self._router.record_success(target)
            return result
        attempt.error = body[:500].decode("utf-8", "replace")
        if status >= 500:
            self._router.record_failure(target)
        if status in self._retry_statuses:
            retry_after = _retry_after_seconds(response.headers.get("retry-after"))
            raise _RetryableFailure(_StatusFailure(result), retry_after)
        return result


class _StatusFailure(Exception):
    def __init__(self, result: UpstreamResult) -> None:
        super().__init__(f"upstream answered {result.status}")
        self.result = result


def _passthrough_headers(response: aiohttp.ClientResponse) -> list[tuple[bytes, bytes]]:
    return [
        (k.lower().encode("latin-1"), v.encode("latin-1"))
        for k, v in response.headers.items()
        if k.lower() not in _HOP_HEADERS
    ]


def _retry_after_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # an HTTP date; the backoff schedule is good enough


def upstream_error(result: UpstreamResult) -> UpstreamError:
    """The error a client sees for an upstream error answer (body passed through)."""
    return UpstreamError(
        f"upstream {result.target.endpoint.name} answered {result.status}",
        upstream_status=result.status,
        body=result.body or b"",
    )
