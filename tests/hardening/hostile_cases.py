"""The hostile inputs of ``test_malformed_input.py``, as data: what is sent and what must come
back. Credentials are placeholders (``{key}``, ``{revoked}``, ``{admin}``) filled in per run,
so that every case keeps a stable id in the pytest output.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Any

import orjson

from costwarden.providers.base import CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES

ROUTES = {
    "/v1/chat/completions": CHAT,
    "/v1/completions": COMPLETIONS,
    "/v1/embeddings": EMBEDDINGS,
    "/v1/messages": MESSAGES,
}
_GENERATING = (CHAT, COMPLETIONS, MESSAGES)
_REQUIRED = {CHAT: "messages", COMPLETIONS: "prompt", EMBEDDINGS: "input", MESSAGES: "messages"}
_OTHER_PROTOCOL = {api: "claude-sonnet-4" for api in (CHAT, COMPLETIONS, EMBEDDINGS)}
_OTHER_PROTOCOL[MESSAGES] = "gpt-4o-mini"


@dataclass(frozen=True)
class Hostile:
    """One request: ``headers`` on top of the route's defaults; ``status`` expected."""

    name: str
    body: bytes
    status: int
    code: str | None = None  # the OpenAI error code, where it is worth pinning
    headers: tuple[tuple[str | bytes, str | bytes], ...] = ()


def valid(api: str) -> dict[str, Any]:
    messages = [{"role": "user", "content": "hello there"}]
    return {
        CHAT: {"model": "gpt-4o-mini", "messages": messages},
        COMPLETIONS: {"model": "gpt-3.5-turbo-instruct", "prompt": "hello there"},
        EMBEDDINGS: {"model": "text-embedding-3-small", "input": "hello there"},
        MESSAGES: {"model": "claude-sonnet-4", "max_tokens": 32, "messages": messages},
    }[api]


def _with(api: str, **fields: Any) -> bytes:
    return orjson.dumps({**valid(api), **fields})


def _without(api: str, name: str) -> bytes:
    return orjson.dumps({k: v for k, v in valid(api).items() if k != name})


def _nested(api: str, depth: int) -> bytes:
    """A valid body plus a field nested ``depth`` levels (orjson would not write it)."""
    return orjson.dumps(valid(api))[:-1] + b', "metadata": ' + b"[" * depth + b"]" * depth + b"}"


def _not_json(api: str) -> list[Hostile]:
    ok = orjson.dumps(valid(api))
    bad = "malformed_json"
    return [
        Hostile("empty", b"", 400, bad),
        Hostile("whitespace", b" \r\n\t ", 400, bad),
        Hostile("truncated", ok[:-5], 400, bad),
        Hostile("trailing-comma", ok[:-1] + b",}", 400, bad),
        Hostile("single-quoted", b"{'model': 'gpt-4o-mini'}", 400, bad),
        Hostile("nan-literal", b'{"model": NaN}', 400, bad),
        Hostile("infinite-number", ok[:-1] + b', "temperature": 1e999}', 400, bad),
        Hostile("utf8-bom", b"\xef\xbb\xbf" + ok, 400, bad),
        Hostile("invalid-utf8", b'{"model": "\xff\xfe"}', 400, bad),
        Hostile("lone-surrogate", b'{"model": "\\ud800"}', 400, bad),
        Hostile("raw-nul-byte", ok.replace(b'"model"', b'"mo\x00del"'), 400, bad),
        Hostile("form-encoded", b"model=gpt-4o-mini&input=hello", 400, bad),
        Hostile("array-empty", b"[]", 400, bad),
        Hostile("array-of-body", b"[" + ok + b"]", 400, bad),
        Hostile("number", b"42", 400, bad),
        Hostile("string", b'"hello"', 400, bad),
        Hostile("null", b"null", 400, bad),
        Hostile("boolean", b"true", 400, bad),
        Hostile("nested-100k-arrays", b"[" * 100_000, 400, bad),
        Hostile("nested-100k-objects", b'{"a":' * 100_000, 400, bad),
        Hostile("nested-300-in-field", _nested(api, 300), 400, bad),
        Hostile("nested-200-in-field", _nested(api, 200), 200),
    ]


def _wrong_fields(api: str) -> list[Hostile]:
    field = _REQUIRED[api]
    cases = [
        Hostile("model-missing", _without(api, "model"), 400, "invalid_request"),
        Hostile("field-missing", _without(api, field), 400, "invalid_request"),
        Hostile("field-null", _with(api, **{field: None}), 400, "invalid_request"),
        Hostile("field-number", _with(api, **{field: 7}), 400, "invalid_request"),
        Hostile("field-object", _with(api, **{field: {"a": 1}}), 400, "invalid_request"),
        Hostile("field-boolean", _with(api, **{field: True}), 400, "invalid_request"),
        Hostile("duplicate-keys", b'{"model": "nope", ' + orjson.dumps(valid(api))[1:], 200),
        Hostile("content-escaped-nul", _with(api, user="a\u0000b"), 200),
        Hostile("extension-field", _with(api, costwarden={"trim": True}), 400),
    ]
    for name, value in (
        ("number", 5),
        ("null", None),
        ("array", ["gpt-4o-mini"]),
        ("object", {}),
        ("boolean", True),
        ("empty", ""),
    ):
        cases.append(Hostile(f"model-{name}", _with(api, model=value), 400, "invalid_request"))
    for name, model in (
        ("unknown", "gpt-9"),
        ("fake-knobs", "gpt-4o-mini?status=500"),
        ("escaped-nul", "gpt-4o-mini\u0000"),
        ("100kb", "m" * 100_000),
    ):
        cases.append(Hostile(f"model-{name}", _with(api, model=model), 400, "model_not_found"))
    other = _with(api, model=_OTHER_PROTOCOL[api])
    cases.append(Hostile("model-of-other-protocol", other, 400, "invalid_request"))
    if api in (CHAT, MESSAGES):
        cases.append(Hostile("field-string", _with(api, **{field: "hi"}), 400))
        cases.append(Hostile("field-empty", _with(api, **{field: []}), 400))
    for name, value in (("string", "true"), ("number", 1), ("null", None), ("object", {})):
        cases.append(Hostile(f"stream-{name}", _with(api, stream=value), 400, "invalid_request"))
    if api == EMBEDDINGS:
        cases.append(Hostile("stream-true", _with(api, stream=True), 400, "invalid_request"))
    return cases


def _absurd_max_tokens(api: str) -> list[Hostile]:
    if api not in _GENERATING:
        return [Hostile("max-tokens-ignored-1e15", _with(api, max_tokens=10**15), 200)]
    ok = orjson.dumps(valid(api))[:-1]
    raw = {
        "float-literal-1e12": b"1e12",
        "float-1.5": b"1.5",
        "u64-max": b"18446744073709551615",
        "beyond-u64": b"18446744073709551616",
        "i64-min": b"-9223372036854775808",
    }
    cases = [
        Hostile(f"max-tokens-{name}", ok + b', "max_tokens": ' + text + b"}", 400)
        for name, text in raw.items()
    ]
    for name, value in (
        ("negative", -1),
        ("zero", 0),
        ("string", "100"),
        ("boolean", True),
        ("array", [5]),
        ("1e15", 10**15),
    ):
        cases.append(Hostile(f"max-tokens-{name}", _with(api, max_tokens=value), 400))
    cases.append(Hostile("max-tokens-1e9", _with(api, max_tokens=10**9), 200))
    if api == MESSAGES:
        cases.append(Hostile("max-tokens-missing", _without(api, "max_tokens"), 400))
        cases.append(Hostile("max-tokens-null", _with(api, max_tokens=None), 400))
    if api == CHAT:
        cases.append(
            Hostile("max-completion-tokens-negative", _with(api, max_completion_tokens=-5), 400)
        )
        cases.append(
            Hostile("max-completion-tokens-string", _with(api, max_completion_tokens="5"), 400)
        )
    return cases


def body_cases() -> list[tuple[str, Hostile]]:
    """(route, case) for every proxy route."""
    return [
        (path, case)
        for path, api in ROUTES.items()
        for case in (*_not_json(api), *_wrong_fields(api), *_absurd_max_tokens(api))
    ]


BAD_CREDENTIALS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("none", ()),
    ("empty-authorization", (("authorization", ""),)),
    ("bearer-without-key", (("authorization", "Bearer"),)),
    ("bearer-blank-key", (("authorization", "Bearer     "),)),
    ("garbage", (("authorization", "Bearer garbage"),)),
    ("wrong-prefix", (("authorization", "Bearer xx-" + "A" * 43),)),
    ("cw-wrong-length", (("authorization", "Bearer cw-abc"),)),
    ("openai-format", (("authorization", "Bearer sk-proj-" + "a1B2" * 12),)),
    ("anthropic-format", (("x-api-key", "sk-ant-api03-" + "x9Y8" * 20),)),
    ("basic-scheme", (("authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l"),)),
    ("bearer-doubled", (("authorization", "Bearer Bearer {key}"),)),
    ("key-without-scheme", (("authorization", "{key}"),)),
    ("key-with-suffix", (("authorization", "Bearer {key}x"),)),
    ("revoked-key", (("authorization", "Bearer {revoked}"),)),
    ("admin-key", (("authorization", "Bearer {admin}"),)),
    ("key-64kb", (("authorization", "Bearer cw-" + "a" * 65_536),)),
    (
        "bad-then-good-authorization",
        (("authorization", "Bearer garbage"), ("authorization", "Bearer {key}")),
    ),
    (
        "bad-bearer-good-x-api-key",
        (("authorization", "Bearer garbage"), ("x-api-key", "{key}")),
    ),
)

GOOD_CREDENTIALS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("bearer-lowercase", (("authorization", "bearer {key}"),)),
    ("bearer-uppercase", (("authorization", "BEARER {key}"),)),
    ("bearer-padded", (("authorization", "Bearer    {key}   "),)),
    ("x-api-key", (("x-api-key", "{key}"),)),
)

# Headers that are odd but harmless: the request must still be served.
ODD_HEADERS: tuple[tuple[str, tuple[tuple[str, bytes], ...]], ...] = (
    ("feature-non-utf8", (("x-costwarden-feature", b"caf\xe9-\xff\xfe"),)),
    ("feature-8kb", (("x-costwarden-feature", b"f" * 8192),)),
    ("tags-duplicated", (("x-costwarden-env", b"prod"), ("x-costwarden-env", b"dev"))),
    ("priority-unknown", (("x-costwarden-priority", b"urgent!!"),)),
    ("cache-garbage", (("x-costwarden-cache", b"maybe?"),)),
    ("content-type-text", (("content-type", b"text/plain"),)),
    ("content-type-multipart", (("content-type", b"multipart/form-data; boundary=x"),)),
    ("content-type-missing", ()),
    ("anthropic-version-garbage", (("anthropic-version", b"\xff not a version"),)),
)

# Framing the HTTP parser refuses before the gateway sees the request (plain-text 400s).
BAD_FRAMING: tuple[tuple[str, tuple[tuple[bytes, bytes], ...]], ...] = (
    ("nul-in-header-value", ((b"x-costwarden-feature", b"a\x00b"),)),
    ("control-char-in-header", ((b"x-costwarden-session", b"a\x01b"),)),
    ("nul-in-authorization", ((b"authorization", b"Bearer cw-\x00"),)),
    ("invalid-header-name", ((b"x cost warden", b"1"),)),
    ("content-length-not-a-number", ((b"content-length", b"abc"),)),
    ("content-length-negative", ((b"content-length", b"-1"),)),
    ("content-length-doubled", ((b"content-length", b"2"), (b"content-length", b"3"))),
)


@dataclass(frozen=True)
class AdminCase:
    name: str
    method: str
    path: str
    status: int
    body: bytes = b""


def _noise(length: int) -> str:
    return "".join(random.Random(16).choices(string.ascii_letters, k=length))


def _budget(**fields: Any) -> bytes:
    return orjson.dumps({"limit_usd": "10", **fields})


_ADMIN_BODIES = (
    ("keys-not-json", "POST", "/admin/keys", 400, b"{user: bob}"),
    ("keys-array", "POST", "/admin/keys", 400, b'[{"user": "bob"}]'),
    ("keys-null", "POST", "/admin/keys", 400, b"null"),
    ("keys-empty", "POST", "/admin/keys", 400, b""),
    ("keys-user-missing", "POST", "/admin/keys", 400, b'{"team": "ops"}'),
    ("keys-user-empty", "POST", "/admin/keys", 400, b'{"user": ""}'),
    ("keys-user-number", "POST", "/admin/keys", 400, b'{"user": 5}'),
    ("keys-user-array", "POST", "/admin/keys", 400, b'{"user": ["bob"]}'),
    ("keys-team-object", "POST", "/admin/keys", 400, b'{"user": "bob", "team": {}}'),
    ("keys-name-boolean", "POST", "/admin/keys", 400, b'{"user": "bob", "name": true}'),
    ("keys-nested-deep", "POST", "/admin/keys", 400, b'{"user": ' + b"[" * 5000 + b"}"),
    ("keys-too-large", "POST", "/admin/keys", 413, orjson.dumps({"user": "u" * 70_000})),
    ("keys-user-escaped-nul", "POST", "/admin/keys", 400, b'{"user": "bob\\u0000"}'),
    # Incompressible: PostgreSQL compresses index entries, so "u" * 3000 would still fit.
    ("keys-user-3kb", "POST", "/admin/keys", 400, orjson.dumps({"user": _noise(3000)})),
    ("keys-team-nul", "POST", "/admin/keys", 400, b'{"user": "bob", "team": "a\\u0000"}'),
    ("budget-not-json", "PUT", "/admin/budgets/b1", 400, b"limit=5"),
    ("budget-array", "PUT", "/admin/budgets/b1", 400, b"[]"),
    ("budget-limit-missing", "PUT", "/admin/budgets/b1", 400, b"{}"),
    ("budget-limit-text", "PUT", "/admin/budgets/b1", 400, _budget(limit_usd="lots")),
    ("budget-limit-negative", "PUT", "/admin/budgets/b1", 400, _budget(limit_usd="-1")),
    ("budget-limit-zero", "PUT", "/admin/budgets/b1", 400, _budget(limit_usd=0)),
    ("budget-limit-nan", "PUT", "/admin/budgets/b1", 400, _budget(limit_usd="NaN")),
    ("budget-limit-infinity", "PUT", "/admin/budgets/b1", 400, _budget(limit_usd="Infinity")),
    ("budget-limit-1e1000000", "PUT", "/admin/budgets/b1", 400, _budget(limit_usd="1e1000000")),
    ("budget-limit-over-max", "PUT", "/admin/budgets/b1", 400, _budget(limit_usd="1e12")),
    ("budget-limit-boolean", "PUT", "/admin/budgets/b1", 400, _budget(limit_usd=True)),
    ("budget-scope-unknown", "PUT", "/admin/budgets/b1", 400, _budget(scope={"planet": "x"})),
    ("budget-scope-empty-value", "PUT", "/admin/budgets/b1", 400, _budget(scope={"user": ""})),
    ("budget-scope-list", "PUT", "/admin/budgets/b1", 400, _budget(scope=["user"])),
    ("budget-scope-nul-value", "PUT", "/admin/budgets/b1", 400, _budget(scope={"user": "\0"})),
    ("budget-period-year", "PUT", "/admin/budgets/b1", 400, _budget(period="year")),
    ("budget-thresholds-zero", "PUT", "/admin/budgets/b1", 400, _budget(soft_thresholds=[0])),
    ("budget-thresholds-text", "PUT", "/admin/budgets/b1", 400, _budget(soft_thresholds=["a"])),
    ("budget-extra-field", "PUT", "/admin/budgets/b1", 400, _budget(colour="red")),
    ("budget-name-mismatch", "PUT", "/admin/budgets/b1", 400, _budget(name="b2")),
    ("budget-too-large", "PUT", "/admin/budgets/b1", 413, _budget(pad="p" * 20_000)),
    ("budget-name-dots", "PUT", "/admin/budgets/..", 400, _budget()),
    ("budget-name-101", "PUT", "/admin/budgets/" + "n" * 101, 400, _budget()),
    ("budget-name-nul", "PUT", "/admin/budgets/b%00", 400, _budget()),
    ("budget-name-non-ascii", "PUT", "/admin/budgets/caf%C3%A9", 400, _budget()),
    ("budget-name-bad-utf8", "PUT", "/admin/budgets/%ff%fe", 400, _budget()),
)

_ADMIN_PATHS = (
    ("spend-group-unknown", "GET", "/admin/spend?group_by=planet", 400),
    ("spend-since-garbage", "GET", "/admin/spend?since=yesterday-ish", 400),
    ("spend-since-overflow", "GET", "/admin/spend?since=99999999999d", 400),
    ("spend-since-before-year-1", "GET", "/admin/spend?since=999999d", 400),
    ("spend-since-year-1-east", "GET", "/admin/spend?since=0001-01-01T00:00:00%2B01:00", 400),
    (
        "spend-until-year-9999-west",
        "GET",
        "/admin/spend?since=1d&until=9999-12-31T23:59:59-01:00",
        400,
    ),
    ("spend-empty-range", "GET", "/admin/spend?since=1d&until=2d", 400),
    ("spend-day-garbage", "GET", "/admin/spend?group_by=day&day=someday", 400),
    ("spend-filter-nul", "GET", "/admin/spend?user=%00", 400),
    ("spend-query-bad-utf8", "GET", "/admin/spend?user=%ff%fe", 200),
    ("request-unknown", "GET", "/admin/requests/req_nope", 404),
    ("request-nul", "GET", "/admin/requests/a%00b", 400),
    ("request-10kb-id", "GET", "/admin/requests/" + "r" * 10_000, 404),
    ("request-bad-utf8", "GET", "/admin/requests/%ff%fe", 404),
    ("revoke-unknown", "DELETE", "/admin/keys/key_nope", 404),
    ("revoke-nul", "DELETE", "/admin/keys/key%00", 400),
    ("budget-delete-unknown", "DELETE", "/admin/budgets/nope", 404),
    ("budget-delete-bad-name", "DELETE", "/admin/budgets/%00", 400),
    ("budget-status-unknown-dimension", "GET", "/admin/budgets/status?planet=x", 400),
    ("budget-status-nul", "GET", "/admin/budgets/status?user=%00", 400),
    ("keys-patch", "PATCH", "/admin/keys", 405),
    ("keys-id-get", "GET", "/admin/keys/key_nope", 405),
    ("budgets-post", "POST", "/admin/budgets", 405),
    ("budget-get-by-name", "GET", "/admin/budgets/b1", 405),
    ("unknown-admin-route", "GET", "/admin/nothing", 404),
    ("admin-root", "GET", "/admin", 404),
    ("admin-deep", "GET", "/admin/keys/a/b/c", 404),
)


def admin_cases() -> list[AdminCase]:
    return [AdminCase(n, m, p, s, b) for n, m, p, s, b in _ADMIN_BODIES] + [
        AdminCase(n, m, p, s) for n, m, p, s in _ADMIN_PATHS
    ]


ADMIN_BAD_CREDENTIALS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("none", ()),
    ("empty", (("authorization", ""),)),
    ("bearer-without-key", (("authorization", "Bearer"),)),
    ("wrong-key", (("authorization", "Bearer not-the-admin-key"),)),
    ("virtual-key", (("authorization", "Bearer {key}"),)),
    ("admin-key-doubled-bearer", (("authorization", "Bearer Bearer {admin}"),)),
    ("admin-key-with-suffix", (("authorization", "Bearer {admin}x"),)),
    ("admin-key-as-x-api-key", (("x-api-key", "{admin}"),)),
    ("basic-scheme", (("authorization", "Basic {admin}"),)),
    ("non-ascii-key", (("authorization", "Bearer caf\xe9"),)),
)
