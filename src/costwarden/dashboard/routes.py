"""``/dashboard…`` on the gateway: login, session check, and the page routes.

    GET  /dashboard                       overview
                                          (?range=24h|7d|30d&grain=hour|day&stack=model|team)
    GET  /dashboard/breakdown/{dimension} user, team, feature, env, model, key, provider
                                          (?sort=…&dir=asc|desc&top=all)
    GET  /dashboard/scope?dim=…&value=…   one value's spend over time and latest requests (?before=)
    GET  /dashboard/request/{id}          one ledger record
    GET  /dashboard/budgets               counters, burn-down, forecasts, cap-hit dates
    GET  /dashboard/events                alerts (?kind=anomaly|price|pin|budget|breaker)
    GET  /dashboard/login, POST /dashboard/login (form: key, next), POST /dashboard/logout

Every page needs a session cookie (``auth.py``) or the admin key as a bearer token; without one
a browser is sent to the login form (303). With no admin key configured every route is 403.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from importlib import resources
from urllib.parse import parse_qsl, quote
from zoneinfo import ZoneInfo

from costwarden.dashboard import layout, params
from costwarden.dashboard.auth import Sessions
from costwarden.dashboard.breakdown import breakdown_page, request_page, scope_page
from costwarden.dashboard.budgets_page import budgets_page
from costwarden.dashboard.config import DashboardConfig
from costwarden.dashboard.context import PageContext
from costwarden.dashboard.overview import events, overview
from costwarden.errors import CostwardenError
from costwarden.gateway.asgi import ClientGone, Receive, Scope, Send, read_body, send_bytes
from costwarden.gateway.services import Services
from costwarden.ledger.store import Store
from costwarden.policy.engine import PolicyEngine
from costwarden.records import utcnow

log = logging.getLogger("costwarden.dashboard")

_FORM_LIMIT = 4096
# No script at all, styles only from the gateway, forms only back to it, never framed.
_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", _CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)
_HTML = (b"content-type", b"text/html; charset=utf-8")
Page = Callable[[PageContext], Awaitable[str]]


class PageNotFound(Exception):
    """The path names no page, or a dimension / record that does not exist."""


def safe_next(target: str | None) -> str:
    """Where to go after login: only a path inside the dashboard (no open redirect)."""
    if not target or not target.startswith(layout.BASE) or "\\" in target or "//" in target:
        return layout.BASE
    return target


class Dashboard:
    def __init__(
        self,
        config: DashboardConfig,
        store: Store,
        policy: PolicyEngine,
        admin_key: str | None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._config = config
        self._store = store
        self._policy = policy
        self._tz = ZoneInfo(policy.config.timezone)
        self._sessions = Sessions(admin_key, config)
        self._clock = clock
        self._css = (resources.files("costwarden.dashboard") / "static" / "dashboard.css"
                     ).read_bytes()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"].rstrip("/") or "/"
        method: str = scope["method"]
        try:
            await self._route(path, method, scope, receive, send)
        except ClientGone:
            return
        except PageNotFound:
            await self._html(send, 404, layout.message_page("Not found", f"No page {path}."))
        except (ValueError, CostwardenError) as exc:
            await self._html(send, 400, layout.message_page("Bad request", str(exc)))

    async def _route(self, path: str, method: str, scope: Scope, receive: Receive,
                     send: Send) -> None:
        if path == layout.CSS_PATH:
            headers = [(b"content-type", b"text/css; charset=utf-8"), *_SECURITY_HEADERS]
            await send_bytes(send, 200, self._css, headers)
            return
        if not self._sessions.enabled:
            page = layout.login_page(error=None, next_path=layout.BASE, enabled=False)
            await self._html(send, 403, page)
            return
        if path == f"{layout.BASE}/login":
            await self._login(method, scope, receive, send)
            return
        if path == f"{layout.BASE}/logout" and method == "POST":
            await self._redirect(send, f"{layout.BASE}/login", self._sessions.clear_cookie(scope))
            return
        if not self._sessions.authorised(scope):
            await self._to_login(scope, send)
            return
        if method != "GET":
            await self._html(send, 405, layout.message_page("Not allowed", f"{method} {path}"))
            return
        await self._html(send, 200, await self._page(path, scope))

    async def _page(self, path: str, scope: Scope) -> str:
        query = params.query_params(scope)
        ctx = PageContext(self._store, self._policy, self._config, self._tz, self._clock(),
                          path, query)
        simple: dict[str, Page] = {
            layout.BASE: overview,
            f"{layout.BASE}/budgets": budgets_page,
            f"{layout.BASE}/events": events,
        }
        if path in simple:
            return await simple[path](ctx)
        parts = path[len(layout.BASE) + 1 :].split("/")
        if len(parts) == 2 and parts[0] == "breakdown" and parts[1] in params.DIMENSIONS:
            return await breakdown_page(ctx, parts[1])
        if parts == ["scope"]:
            dimension, value = query.get("dim", ""), query.get("value", "")
            if dimension not in params.DIMENSIONS or not value:
                raise PageNotFound(path)
            return await scope_page(ctx, dimension, value)
        if len(parts) == 2 and parts[0] == "request":
            record = await self._store.get_record(parts[1])
            if record is None:
                raise PageNotFound(path)
            return request_page(ctx, record)
        raise PageNotFound(path)

    async def _login(self, method: str, scope: Scope, receive: Receive, send: Send) -> None:
        if method == "GET":
            target = safe_next(params.query_params(scope).get("next"))
            await self._html(send, 200, layout.login_page(error=None, next_path=target,
                                                          enabled=True))
            return
        if method != "POST":
            await self._html(send, 405, layout.message_page("Not allowed", method))
            return
        body = await read_body(scope, receive, _FORM_LIMIT)
        form = dict(parse_qsl(body.decode("utf-8", errors="replace")))
        target = safe_next(form.get("next"))
        if not self._sessions.key_matches(form.get("key", "")):
            log.warning("dashboard login refused: wrong admin key")
            page = layout.login_page(error="That is not the admin key.", next_path=target,
                                     enabled=True)
            await self._html(send, 401, page)
            return
        cookie = self._sessions.set_cookie(scope, self._sessions.issue())
        await self._redirect(send, target, cookie)

    async def _to_login(self, scope: Scope, send: Send) -> None:
        here = scope["path"]
        if scope.get("query_string"):
            here += "?" + scope["query_string"].decode("latin-1")
        await self._redirect(send, f"{layout.BASE}/login?next={quote(safe_next(here), safe='')}")

    async def _redirect(self, send: Send, location: str,
                        cookie: tuple[bytes, bytes] | None = None) -> None:
        headers = [(b"location", location.encode("latin-1")), *_SECURITY_HEADERS]
        if cookie is not None:
            headers.append(cookie)
        await send_bytes(send, 303, b"", headers)

    async def _html(self, send: Send, status: int, page: str) -> None:
        await send_bytes(send, status, page.encode(), (_HTML, *_SECURITY_HEADERS))


def build_dashboard(
    services: Services, environ: Mapping[str, str] | None = None
) -> Dashboard | None:
    """The gateway's dashboard over its services (None when ``dashboard.enabled`` is off)."""
    settings = services.settings
    if not settings.dashboard.enabled:
        return None
    env = os.environ if environ is None else environ
    admin_key = env.get(settings.gateway.admin_key_env) or None
    return Dashboard(settings.dashboard, services.ledger.store, services.policy, admin_key)
