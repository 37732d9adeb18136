"""The admin HTTP API: virtual keys, request records and spend, behind the admin key.

    POST   /admin/keys            {"user", "team", "name"} → the new key, shown this once
    GET    /admin/keys            keys without secrets
    DELETE /admin/keys/{id}       revoke
    GET    /admin/requests/{id}   one ledger record
    GET    /admin/spend?group_by=user,model&since=7d[&until=…][&user=…]   spend rows
    /admin/budgets…               budgets managed at run time (see admin_budgets.py)

The admin key comes from the environment variable named by ``gateway.admin_key_env``; with no
such variable set the admin API is off (403), never open.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
from typing import Any
from urllib.parse import parse_qsl

import orjson

from costwarden.errors import (
    AuthenticationError,
    CostwardenError,
    InvalidRequest,
    LedgerUnavailable,
    MethodNotAllowed,
    NotFound,
    PermissionDenied,
)
from costwarden.gateway.admin_budgets import BudgetAdmin
from costwarden.gateway.asgi import (
    Receive,
    Scope,
    Send,
    header,
    parse_json_object,
    read_body,
    send_error,
    send_json,
)
from costwarden.gateway.services import Services
from costwarden.ledger.backends import UNREACHABLE_ERRORS
from costwarden.reports import parse_range, spend_report

log = logging.getLogger("costwarden.gateway")

_ADMIN_BODY_LIMIT = 64 * 1024
# A key's user / team / name. PostgreSQL cannot store NUL in text, and indexes ``user``
# (a btree row holds at most ~2.7 kB): refuse both here rather than fail in the database.
_MAX_TEXT_CHARS = 256
_CATCH_UP_S = 5.0
GROUPS = frozenset({"user", "team", "model", "feature", "env", "key", "day", "provider", "status"})


class AdminAPI:
    def __init__(self, services: Services, environ: dict[str, str] | None = None) -> None:
        self._s = services
        env = os.environ if environ is None else environ
        self._admin_key = env.get(services.settings.gateway.admin_key_env) or None
        self._budgets = BudgetAdmin(services)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self._authorise(scope)
            status, data = await self._dispatch(scope, receive)
            await send_json(send, status, data)
        except CostwardenError as exc:
            await send_error(send, exc)
        except UNREACHABLE_ERRORS as exc:
            log.warning("admin request: ledger database unreachable (%s)", type(exc).__name__)
            await send_error(send, LedgerUnavailable("the ledger database is unreachable"))
        except Exception:
            # A bug of ours: still answer in the API's error shape, not the server's bare 500.
            log.exception("unhandled error in admin request %s %s", scope["method"], scope["path"])
            await send_error(send, CostwardenError("internal gateway error"))

    def _authorise(self, scope: Scope) -> None:
        if self._admin_key is None:
            raise PermissionDenied(
                "the admin API is disabled: set "
                f"{self._s.settings.gateway.admin_key_env} to enable it"
            )
        auth = header(scope, b"authorization") or ""
        given = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if not given or not hmac.compare_digest(given.encode(), self._admin_key.encode()):
            raise AuthenticationError("invalid admin key")

    async def _dispatch(self, scope: Scope, receive: Receive) -> tuple[int, Any]:
        method = scope["method"]
        parts = scope["path"].rstrip("/").split("/")[2:]  # after "/admin"
        if parts == ["keys"]:
            if method == "POST":
                return 201, await self._create_key(scope, receive)
            if method == "GET":
                return 200, {"data": [k.to_public() for k in await self._s.keys.list()]}
            raise MethodNotAllowed(f"{method} is not allowed on /admin/keys")
        if len(parts) == 2 and parts[0] == "keys":
            if method != "DELETE":
                raise MethodNotAllowed(f"{method} is not allowed on /admin/keys/{{id}}")
            if not await self._s.keys.revoke(parts[1]):
                raise NotFound(f"no key with id '{parts[1]}'")
            return 200, {"id": parts[1], "revoked": True}
        if len(parts) == 2 and parts[0] == "requests" and method == "GET":
            return 200, await self._request(parts[1])
        if parts == ["spend"] and method == "GET":
            return 200, await self._spend(scope)
        if parts and parts[0] == "budgets":
            return await self._budgets.handle(method, parts[1:], scope, receive)
        raise NotFound(f"no admin route {method} {scope['path']}")

    async def _create_key(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        body = parse_json_object(await read_body(scope, receive, _ADMIN_BODY_LIMIT))
        fields = {name: _text_field(body, name) for name in ("user", "team", "name")}
        if not fields["user"]:
            raise InvalidRequest("'user' is required", param="user")
        created = await self._s.keys.create(
            user=fields["user"], team=fields["team"], name=fields["name"]
        )
        return created.to_public(include_secret=True)

    async def _catch_up(self) -> None:
        """Let the copier store what is spooled, but never hang an admin call on a database
        outage: the spool keeps the records, and the answer is then merely not the newest."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._s.ledger.flush(), _CATCH_UP_S)

    async def _request(self, request_id: str) -> dict[str, Any]:
        await self._catch_up()  # a just-answered request may still be in the spool
        record = await self._s.ledger.store.get_record(request_id)
        if record is None:
            raise NotFound(f"no request with id '{request_id}'")
        result: dict[str, Any] = orjson.loads(orjson.dumps(record.to_dict()))
        return result

    async def _spend(self, scope: Scope) -> dict[str, Any]:
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        group_by = [g for g in query.pop("group_by", "user").split(",") if g]
        unknown = [g for g in group_by if g not in GROUPS]
        if unknown:
            raise InvalidRequest(f"cannot group by {unknown}; choose from {sorted(GROUPS)}")
        try:
            since, until = parse_range(query.pop("since", "30d"), query.pop("until", None))
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        filters = {k: v for k, v in query.items() if k in GROUPS}
        await self._catch_up()
        try:
            rows = await spend_report(self._s.ledger.store, group_by, since, until, filters)
        except ValueError as exc:  # e.g. a day filter that is not YYYY-MM-DD
            raise InvalidRequest(str(exc)) from None
        return {
            "since": since.isoformat(),
            "until": until.isoformat(),
            "group_by": group_by,
            "data": [row.to_dict() for row in rows],
        }


def _text_field(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string", param=name)
    if len(value) > _MAX_TEXT_CHARS or "\x00" in value:
        raise InvalidRequest(
            f"'{name}' must be at most {_MAX_TEXT_CHARS} characters, none of them NUL", param=name
        )
    return value
