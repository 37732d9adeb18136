"""Hand-written hostile input, over real HTTP, for every client route and the admin API.

What schema fuzzing misses: bytes that are not JSON, JSON that is not an object, types the
validator must catch one by one, NUL and non-UTF-8 bytes, 20 MB bodies, 100k-level nesting,
absurd ``max_tokens``, models that do not exist or speak the other protocol, keys that are
missing, foreign, doubled or revoked, and methods a route does not serve. Each runs against
both deployments: embedded (SQLite, in-process counters) and replicas (PostgreSQL, Redis).

Every answer: never a 5xx; a refusal carries the route's protocol error body with a useful
message; and the ledger and counters stay consistent (no record for an unauthenticated
request, no reservation outliving its request, no record left in flight or marked as our bug).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from costwarden.records import Status
from tests.hardening import hostile_cases as hc
from tests.hardening.protocol import assert_refusal_shape, is_anthropic
from tests.hardening.raw_http import Answer, send, stream_upload
from tests.hardening.tally import Tally
from tests.support.threaded_gateway import ADMIN_KEY, ThreadedGateway

MB = 1024 * 1024
_JSON = (("content-type", "application/json"),)


@dataclass(frozen=True)
class Target:
    gw: ThreadedGateway
    revoked: str  # a key that was valid once

    @property
    def url(self) -> str:
        return self.gw.url

    def fill(self, headers: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
        secrets = {"key": self.gw.key, "revoked": self.revoked, "admin": ADMIN_KEY}
        return [(name, value.format(**secrets)) for name, value in headers]

    def auth(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.gw.key}")]


def _replica_settings(request: pytest.FixtureRequest, tmp: Path) -> dict[str, Any]:
    redis_url = request.getfixturevalue("redis_url")
    return {
        "ledger": {
            "backend": "postgres",
            "postgres_dsn": request.getfixturevalue("postgres_dsn"),
            "spool_dir": str(tmp / "spool"),
            "flush_interval_s": 0.02,
        },
        "state": {
            "backend": "redis",
            "redis_url": redis_url,
            "key_prefix": request.getfixturevalue("redis_key_prefix") + ":hostile",
        },
    }


@pytest.fixture(scope="module", params=["sqlite-memory", "postgres-redis"])
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    tmp = tmp_path_factory.mktemp("hostile")
    extra = _replica_settings(request, tmp) if request.param == "postgres-redis" else {}
    gw = ThreadedGateway(tmp, **extra).start()
    revoked = gw.new_key("mallory")
    principal = gw.run(gw.services.keys.authenticate(revoked))
    assert principal is not None and gw.run(gw.services.keys.revoke(principal.key_id))
    yield Target(gw, revoked)
    gw.stop()


def _named(table: tuple[tuple[str, Any], ...]) -> list[Any]:
    return [pytest.param(value, id=name) for name, value in table]


def _check(path: str, answer: Answer, status: int, tally: Tally, label: str) -> None:
    tally.add(label, answer.status)
    assert answer.status == status, f"{path}: {answer.status} {answer.body[:300]!r}"
    if status >= 400:
        assert answer.content_type == "application/json"
        assert_refusal_shape(path, answer.status, answer.body)


@pytest.mark.parametrize(
    ("path", "case"), [pytest.param(p, c, id=f"{p}-{c.name}") for p, c in hc.body_cases()]
)
def test_hostile_body(target: Target, hostile_tally: Tally, path: str, case: hc.Hostile) -> None:
    headers = [*target.auth(), *_JSON]
    answer = send(target.url, "POST", path, headers, case.body)
    _check(path, answer, case.status, hostile_tally, "body")
    if case.code is not None and not is_anthropic(path):
        assert orjson.loads(answer.body)["error"]["code"] == case.code


_CREDENTIALS = [(n, h, 401) for n, h in hc.BAD_CREDENTIALS]
_CREDENTIALS += [(n, h, 200) for n, h in hc.GOOD_CREDENTIALS]


@pytest.mark.parametrize("path", list(hc.ROUTES))
@pytest.mark.parametrize(
    ("headers", "status"), [pytest.param(*c[1:], id=c[0]) for c in _CREDENTIALS]
)
def test_credentials(
    target: Target,
    hostile_tally: Tally,
    path: str,
    headers: tuple[tuple[str, str], ...],
    status: int,
) -> None:
    body = orjson.dumps(hc.valid(hc.ROUTES[path]))
    answer = send(target.url, "POST", path, [*target.fill(headers), *_JSON], body)
    _check(path, answer, status, hostile_tally, "credentials")


@pytest.mark.parametrize("path", list(hc.ROUTES))
@pytest.mark.parametrize("headers", _named(hc.ODD_HEADERS))
def test_odd_headers_are_served(
    target: Target, hostile_tally: Tally, path: str, headers: tuple[tuple[str, bytes], ...]
) -> None:
    body = orjson.dumps(hc.valid(hc.ROUTES[path]))
    answer = send(target.url, "POST", path, [*target.auth(), *headers], body)
    _check(path, answer, 200, hostile_tally, "odd headers")


@pytest.mark.parametrize("headers", _named(hc.BAD_FRAMING))
def test_bad_framing_is_refused_by_the_http_parser(
    target: Target, hostile_tally: Tally, headers: tuple[tuple[bytes, bytes], ...]
) -> None:
    framing = [(b"authorization", f"Bearer {target.gw.key}".encode()), *headers]
    answer = send(target.url, "POST", "/v1/chat/completions", framing, b"{}", content_length=False)
    hostile_tally.add("framing", answer.status)
    # uvicorn's parser answers these itself (plain text), before any application code runs.
    assert answer.status == 400, answer


_METHODS = [(m, p) for p in hc.ROUTES for m in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS")]
_METHODS += [(m, p) for p in ("/v1/models", "/health", "/openapi.json") for m in ("POST", "DELETE")]


@pytest.mark.parametrize(("method", "path"), _METHODS)
def test_method_not_served(target: Target, hostile_tally: Tally, method: str, path: str) -> None:
    answer = send(target.url, method, path, target.auth())
    _check(path, answer, 405, hostile_tally, "methods")


@pytest.mark.parametrize("path", list(hc.ROUTES))
def test_head_is_refused_without_a_body(target: Target, hostile_tally: Tally, path: str) -> None:
    answer = send(target.url, "HEAD", path, target.auth())
    hostile_tally.add("methods", answer.status)
    assert answer.status == 405 and answer.body == b""


_PATHS = (
    ("typo", "/v1/chat/completion", 404),
    ("trailing-slash", "/v1/messages/", 404),
    ("bad-utf8", "/%ff%fe", 404),
    ("16kb", "/" + "p" * 16_000, 404),
    ("batch-empty-id", "/v1/costwarden/batch/items/", 404),
    ("nul", "/v1/chat%00completions", 400),
    ("batch-nul-id", "/v1/costwarden/batch/items/bi_nope%00", 400),
    ("messages-nul-query", "/v1/messages?beta=%00", 400),
)


@pytest.mark.parametrize(("path", "status"), [pytest.param(*c[1:], id=c[0]) for c in _PATHS])
def test_unknown_or_nul_paths(target: Target, hostile_tally: Tally, path: str, status: int) -> None:
    answer = send(target.url, "GET" if status == 404 else "POST", path, target.auth())
    _check(path, answer, status, hostile_tally, "paths")


def _twenty_mb() -> Iterator[bytes]:
    chunk = b" " * MB
    for _ in range(20):
        yield chunk


@pytest.mark.parametrize("path", list(hc.ROUTES))
def test_declared_20mb_body_is_refused_before_it_is_sent(
    target: Target, hostile_tally: Tally, path: str
) -> None:
    # Only the head goes out: a gateway that waited for the body would time this out.
    head = [*target.auth(), ("content-length", str(20 * MB))]
    answer = send(target.url, "POST", path, head, content_length=False)
    _check(path, answer, 413, hostile_tally, "20 MB bodies")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_streamed_20mb_body_is_refused_while_still_uploading(
    target: Target, hostile_tally: Tally, path: str, chunked: bool
) -> None:
    length = [] if chunked else [("content-length", str(20 * MB))]
    upload = stream_upload(
        target.url, path, [*target.auth(), *length], _twenty_mb(), chunked=chunked
    )
    _check(path, upload.answer, 413, hostile_tally, "20 MB bodies")
    # Answered at the limit (8 MB by default), not after reading all 20 MB.
    assert upload.sent_before_answer < 20 * MB


def test_unauthenticated_20mb_body_is_refused_before_it_is_read(
    target: Target, hostile_tally: Tally
) -> None:
    answer = send(
        target.url,
        "POST",
        "/v1/chat/completions",
        [("content-length", str(20 * MB))],
        content_length=False,
    )
    _check("/v1/chat/completions", answer, 401, hostile_tally, "20 MB bodies")


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in hc.admin_cases()])
def test_hostile_admin_request(target: Target, hostile_tally: Tally, case: hc.AdminCase) -> None:
    headers = [("authorization", f"Bearer {ADMIN_KEY}"), *_JSON]
    answer = send(target.url, case.method, case.path, headers, case.body)
    _check(case.path, answer, case.status, hostile_tally, "admin")


_ADMIN_ROUTES = [
    ("GET", "/admin/keys"),
    ("POST", "/admin/keys"),
    ("GET", "/admin/spend"),
    ("PUT", "/admin/budgets/b1"),
    ("DELETE", "/admin/keys/key_x"),
]


@pytest.mark.parametrize(("method", "path"), _ADMIN_ROUTES)
@pytest.mark.parametrize("headers", _named(hc.ADMIN_BAD_CREDENTIALS))
def test_admin_credentials(
    target: Target,
    hostile_tally: Tally,
    headers: tuple[tuple[str, str], ...],
    method: str,
    path: str,
) -> None:
    answer = send(target.url, method, path, [*target.fill(headers), *_JSON], b'{"user": "eve"}')
    _check(path, answer, 401, hostile_tally, "admin credentials")


def test_unauthenticated_requests_leave_no_record(target: Target) -> None:
    gw = target.gw
    gw.run(gw.services.ledger.flush())
    before = gw.run(gw.services.ledger.store.all_request_ids())
    for path, api in hc.ROUTES.items():
        body = orjson.dumps(hc.valid(api))
        for _, headers in hc.BAD_CREDENTIALS:
            assert send(target.url, "POST", path, target.fill(headers), body).status == 401
    gw.run(gw.services.ledger.flush())
    assert gw.run(gw.services.ledger.store.all_request_ids()) == before


def test_a_record_with_nul_in_it_is_stored_on_every_backend(target: Target) -> None:
    """An unknown model is refused, yet recorded (it was authenticated): a NUL in its name
    must not wedge the ledger copy (PostgreSQL text cannot hold NUL; it keeps U+FFFD)."""
    body = orjson.dumps({**hc.valid(hc.ROUTES["/v1/chat/completions"]), "model": "gpt\u0000x"})
    answer = send(target.url, "POST", "/v1/chat/completions", [*target.auth(), *_JSON], body)
    assert answer.status == 400
    assert "x-costwarden-model" not in answer.headers  # the client's text is not echoed
    gw = target.gw
    gw.run(gw.services.ledger.flush())
    record = gw.run(gw.services.ledger.store.get_record(answer.headers["x-request-id"]))
    assert record is not None and record.status == Status.REJECTED
    assert record.requested_model in ("gpt\u0000x", "gpt\ufffdx")
    assert record.resolved_model is None


def test_state_is_consistent_after_hostile_input(target: Target) -> None:
    """Runs last in the module: after everything above, nothing is left half-done."""
    gw = target.gw
    deadline = time.monotonic() + 10
    while True:  # releases and settlements run just after the answers went out
        statuses = gw.run(gw.services.policy.budget_status({"user": "alice"}))
        reserved = sum(s.reserved_usd for s in statuses if s.reserved_usd is not None)
        if reserved == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert statuses and reserved == 0
    gw.run(gw.services.ledger.flush())
    store = gw.services.ledger.store
    for status in (Status.IN_FLIGHT, Status.GATEWAY_ERROR):
        assert gw.run(store.count_records(filters={"status": status.value})) == 0
    stats = gw.services.ledger.stats
    assert stats.bad_lines == 0 and stats.store_failures == 0
