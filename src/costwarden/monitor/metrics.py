"""The gateway's Prometheus metrics, counted once per finished request from its ``UsageRecord``.

A hand-rolled registry rather than ``prometheus_client``: measured per finished request
(``bench/bench_metrics.py``), its labelled counters and histograms cost ~14 µs for the same
numbers this one counts in ~1 µs. Everything a record adds goes into one series object keyed by
``(api, model, provider, team, feature, status)`` — one dict lookup and a few additions — and
the metric families are only projected out of those series when Prometheus scrapes.

Counters are per process and start at zero with it; Prometheus sums replicas (``sum by``) and
``rate()`` handles restarts. Everything here runs on the event loop's thread: no locks.

Cardinality: per-user labels are left out on purpose (there can be millions of users). Every
label keeps at most ``max_label_values`` distinct values — configured model names always
count as known — and folds later ones into ``other``; at most ``max_series`` series are kept,
after which new combinations fold into ``(api, other, other, other, other, status)``.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from decimal import Decimal

from costwarden.monitor.exposition import Family, HistogramCounts
from costwarden.monitor.metrics_config import MetricsConfig
from costwarden.records import Status, UsageRecord

OTHER = "other"
# Longer values are folded into OTHER too: a client-chosen feature tag or model name could
# otherwise hold megabytes per label value.
MAX_LABEL_LENGTH = 200
CACHE_KINDS = frozenset(("cache_exact", "cache_semantic"))
_ZERO = Decimal(0)
_TOKEN_TYPES = ("input", "output", "cache_read", "cache_write", "reasoning")

SeriesKey = tuple[str, str, str, str, str, Status]  # api, model, provider, team, feature, status
SavingKey = tuple[str, str, str]  # kind, model, team


class BoundedLabel:
    """The values one label may take: the first ``limit`` distinct ones (plus ``always``);
    every later one reads as ``other``. A missing value (None) reads as the empty string,
    which Prometheus treats as the label being absent."""

    __slots__ = ("_extra", "_known", "_limit", "name", "overflowed")

    def __init__(self, name: str, limit: int, always: Iterable[str] = ()) -> None:
        self.name = name
        self._limit = limit
        self._known: dict[str | None, str] = {None: "", OTHER: OTHER}
        self._known.update((value, value) for value in always)
        self._extra = 0
        self.overflowed = 0  # values folded into OTHER

    def __call__(self, value: str | None) -> str:
        known = self._known.get(value)
        return known if known is not None else self._admit(value or "")

    def _admit(self, value: str) -> str:
        if self._extra >= self._limit or len(value) > MAX_LABEL_LENGTH:
            self.overflowed += 1
            return OTHER
        self._extra += 1
        self._known[value] = value
        return value


class _Series:
    """What the requests of one label combination added up to."""

    __slots__ = (
        "cache_read_tokens",
        "cache_write_tokens",
        "cost",
        "input_tokens",
        "latency",
        "output_tokens",
        "reasoning_tokens",
        "requests",
        "unpriced",
        "upstream",
    )

    def __init__(self, buckets: int) -> None:
        self.requests = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_read_tokens = 0
        self.cache_write_tokens = 0
        self.reasoning_tokens = 0
        self.cost = _ZERO  # exact: summed as Decimal, written as decimal text
        self.unpriced = 0  # requests that reached an upstream and have no known price
        self.latency = HistogramCounts([0] * buckets)
        self.upstream = HistogramCounts([0] * buckets)

    def add(self, record: UsageRecord, bounds_ms: list[float]) -> None:
        self.requests += 1
        usage = record.usage
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cache_read_tokens += usage.cache_read_tokens
        self.cache_write_tokens += usage.cache_write_tokens
        self.reasoning_tokens += usage.reasoning_tokens
        cost = record.cost
        if cost is not None:
            self.cost += cost
        elif record.attempts:
            self.unpriced += 1
        latency = record.latency_ms
        self.latency.observe(bisect_left(bounds_ms, latency), latency / 1000)
        if record.attempts:
            upstream = record.upstream_latency_ms
            self.upstream.observe(bisect_left(bounds_ms, upstream), upstream / 1000)

    def tokens(self) -> tuple[int, ...]:
        """Token sums in ``_TOKEN_TYPES`` order."""
        return (
            self.input_tokens,
            self.output_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
        )


class _Savings:
    __slots__ = ("count", "tokens", "usd")

    def __init__(self) -> None:
        self.count = 0
        self.usd = _ZERO  # savings of unknown value (no price) add nothing here
        self.tokens = 0


class GatewayMetrics:
    """The registry: ``observe`` each finished record, ``refused`` each refusal that has no
    record (bad key, malformed body), ``families`` at scrape time."""

    def __init__(self, config: MetricsConfig, models: Iterable[str] = ()) -> None:
        limit = config.max_label_values
        self._model = BoundedLabel("model", limit, always=models)
        self._team = BoundedLabel("team", limit)
        self._feature = BoundedLabel("feature", limit)
        self._reason = BoundedLabel("reason", limit)
        self._kind = BoundedLabel("kind", limit)
        self._max_series = config.max_series
        self._bounds_s = config.latency_buckets_s
        self._bounds_ms = [bound * 1000 for bound in config.latency_buckets_s]
        self._buckets = len(self._bounds_ms) + 1  # the last one is +Inf
        self._series: dict[SeriesKey, _Series] = {}
        self._savings: dict[SavingKey, _Savings] = {}
        self._rejections: dict[str, int] = {}
        self.series_overflowed = 0  # requests counted in a folded series (max_series reached)
        self.started = time.time()

    # -- request path --------------------------------------------------------------------
    def observe(self, record: UsageRecord) -> None:
        """Count one finished request (called once, right after its ledger append)."""
        principal = record.principal
        key = (
            record.api,
            self._model(record.resolved_model or record.requested_model),
            record.provider or "",
            self._team(principal.team if principal is not None else None),
            self._feature(record.tags.feature),
            record.status,
        )
        series = self._series.get(key) or self._new_series(key)
        series.add(record, self._bounds_ms)
        if record.savings:
            self._observe_savings(record, key[1], key[3])
        if record.status is Status.REJECTED:
            self.refused(record.error_type or "rejected")

    def refused(self, reason: str) -> None:
        """Count a refusal before any upstream call (with or without a record)."""
        label = self._reason(reason)
        self._rejections[label] = self._rejections.get(label, 0) + 1

    def _new_series(self, key: SeriesKey) -> _Series:
        if len(self._series) >= self._max_series:
            self.series_overflowed += 1
            api, _, _, _, _, status = key
            key = (api, OTHER, OTHER, OTHER, OTHER, status)
            folded = self._series.get(key)
            if folded is not None:
                return folded
        series = self._series[key] = _Series(self._buckets)
        return series

    def _observe_savings(self, record: UsageRecord, model: str, team: str) -> None:
        for saving in record.savings:
            key = (self._kind(saving.kind), model, team)
            entry = self._savings.get(key)
            if entry is None:
                entry = self._savings[key] = _Savings()
            entry.count += 1
            entry.tokens += saving.tokens_saved
            if saving.cost_saved is not None:
                entry.usd += saving.cost_saved

    # -- scrape --------------------------------------------------------------------------
    def families(self) -> list[Family]:
        """Every metric family, projected out of the series kept so far."""
        return [
            *self._request_families(),
            *self._saving_families(),
            self._rejection_family(),
            self._overflow_family(),
        ]

    def _request_families(self) -> Iterator[Family]:
        requests = Family(
            "costwarden_requests_total",
            "counter",
            "Finished proxied requests (one per ledger record), by outcome.",
            ("api", "model", "provider", "team", "status"),
        )
        tokens = Family(
            "costwarden_tokens_total",
            "counter",
            "Tokens by type; input counts all prompt tokens, cache reads and writes included.",
            ("model", "team", "type"),
        )
        cost = Family(
            "costwarden_cost_usd_total",
            "counter",
            "Spend in USD, as priced into the ledger (exact decimal).",
            ("model", "team", "feature"),
        )
        unpriced = Family(
            "costwarden_unpriced_requests_total",
            "counter",
            "Requests that reached an upstream with no known price (missing from the cost).",
            ("model",),
        )
        latency = self._histogram(
            "costwarden_request_duration_seconds",
            "Time from request arrival to its final record, as the gateway saw it.",
            ("api", "model", "status"),
        )
        upstream = self._histogram(
            "costwarden_upstream_duration_seconds",
            "Time spent in upstream calls (all attempts of one request).",
            ("provider", "model"),
        )
        for (api, model, provider, team, feature, status), series in self._series.items():
            requests.add((api, model, provider, team, status.value), series.requests)
            for kind, count in zip(_TOKEN_TYPES, series.tokens(), strict=True):
                if count:  # most series never see cache or reasoning tokens: no line for them
                    tokens.add((model, team, kind), count)
            cost.add((model, team, feature), series.cost)
            if series.unpriced:
                unpriced.add((model,), series.unpriced)
            latency.add_histogram((api, model, status.value), series.latency)
            if any(series.upstream.buckets):
                upstream.add_histogram((provider, model), series.upstream)
        yield from (requests, tokens, cost, unpriced, latency, upstream)

    def _histogram(self, name: str, text: str, labels: tuple[str, ...]) -> Family:
        return Family(name, "histogram", text, labels, bounds=self._bounds_s)

    def _saving_families(self) -> Iterator[Family]:
        labels = ("kind", "model", "team")
        hits = Family(
            "costwarden_cache_hits_total",
            "counter",
            "Requests answered from the exact or semantic cache, with no upstream call.",
            labels,
        )
        applied = Family(
            "costwarden_savings_total", "counter", "Savings stages that acted on a request.", labels
        )
        usd = Family(
            "costwarden_saved_usd_total",
            "counter",
            "USD kept from being spent by the savings stages (negative for a dearer cascade).",
            labels,
        )
        tokens = Family(
            "costwarden_saved_tokens_total",
            "counter",
            "Tokens not sent or not generated thanks to the savings stages.",
            labels,
        )
        for key, entry in self._savings.items():
            if key[0] in CACHE_KINDS:
                hits.add(key, entry.count)
            applied.add(key, entry.count)
            usd.add(key, entry.usd)
            tokens.add(key, entry.tokens)
        yield from (hits, applied, usd, tokens)

    def _rejection_family(self) -> Family:
        family = Family(
            "costwarden_rejections_total",
            "counter",
            "Requests refused before any upstream call, by reason (error code); bad keys and "
            "malformed bodies included, which have no ledger record.",
            ("reason",),
        )
        for reason, count in self._rejections.items():
            family.add((reason,), count)
        return family

    def _overflow_family(self) -> Family:
        family = Family(
            "costwarden_metrics_label_overflow_total",
            "counter",
            "Label values folded into 'other' (label=series: max_series was reached).",
            ("label",),
        )
        for bound in (self._model, self._team, self._feature, self._reason, self._kind):
            family.add((bound.name,), bound.overflowed)
        family.add(("series",), self.series_overflowed)
        return family
