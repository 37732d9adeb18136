"""Dashboard login: the admin key, signed session cookies, logout, and the headers on every page."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

from costwarden.dashboard.auth import COOKIE_NAME, Sessions
from costwarden.dashboard.config import DashboardConfig
from costwarden.dashboard.routes import safe_next
from costwarden.ledger import Store
from tests.dashboard.seed import ADMIN_KEY, NOW, build_dashboard, call


def _cookie_of(set_cookie: str | None) -> str:
    assert set_cookie is not None
    pair = set_cookie.split(";")[0]
    name, _, value = pair.partition("=")
    assert name == COOKIE_NAME
    return value


async def _login(store: Store, key: str = ADMIN_KEY, next_path: str = "/dashboard") -> str:
    dashboard = build_dashboard(store)
    form = f"key={quote(key)}&next={quote(next_path)}".encode()
    response = await call(dashboard, "/dashboard/login", method="POST", bearer=None, form=form)
    assert response.status == 303
    return _cookie_of(response.header("set-cookie"))


async def test_a_page_without_credentials_sends_the_browser_to_the_login(
    ledger_store: Store,
) -> None:
    dashboard = build_dashboard(ledger_store)
    response = await call(dashboard, "/dashboard/breakdown/user?range=7d", bearer=None)
    assert response.status == 303
    assert response.header("location") == (
        "/dashboard/login?next=" + quote("/dashboard/breakdown/user?range=7d", safe="")
    )
    form = await call(dashboard, "/dashboard/login?next=/dashboard/budgets", bearer=None)
    assert form.status == 200
    assert 'name="next" value="/dashboard/budgets"' in form.text


async def test_login_sets_a_strict_http_only_cookie_that_opens_the_pages(
    ledger_store: Store,
) -> None:
    dashboard = build_dashboard(ledger_store)
    form = f"key={quote(ADMIN_KEY)}&next=/dashboard/budgets".encode()
    response = await call(dashboard, "/dashboard/login", method="POST", bearer=None, form=form)
    assert response.status == 303
    assert response.header("location") == "/dashboard/budgets"
    set_cookie = response.header("set-cookie")
    assert set_cookie is not None
    attributes = {part.strip() for part in set_cookie.split(";")[1:]}
    assert {"HttpOnly", "SameSite=Strict", "Path=/dashboard", "Max-Age=43200"} <= attributes
    assert "Secure" not in attributes  # plain http here; see the https test below
    page = await call(dashboard, "/dashboard", bearer=None,
                      cookie=f"other=1; {COOKIE_NAME}={_cookie_of(set_cookie)}")
    assert page.status == 200
    assert 'id="total-cost"' in page.text


async def test_the_cookie_is_secure_over_https_or_when_configured(ledger_store: Store) -> None:
    form = f"key={quote(ADMIN_KEY)}".encode()
    over_tls = await call(build_dashboard(ledger_store), "/dashboard/login", method="POST",
                          bearer=None, form=form, scheme="https")
    assert "Secure" in (over_tls.header("set-cookie") or "")
    behind_proxy = build_dashboard(ledger_store, dashboard={"secure_cookie": True})
    forced = await call(behind_proxy, "/dashboard/login", method="POST", bearer=None, form=form)
    assert "Secure" in (forced.header("set-cookie") or "")


async def test_a_wrong_key_is_refused_at_the_form_and_as_a_bearer(ledger_store: Store) -> None:
    dashboard = build_dashboard(ledger_store)
    form = b"key=not-the-key&next=/dashboard"
    response = await call(dashboard, "/dashboard/login", method="POST", bearer=None, form=form)
    assert response.status == 401
    assert response.header("set-cookie") is None
    assert 'id="login-error"' in response.text
    as_bearer = await call(dashboard, "/dashboard", bearer="not-the-key")
    assert as_bearer.status == 303


async def test_forged_expired_and_rotated_key_cookies_are_refused(ledger_store: Store) -> None:
    cookie = await _login(ledger_store)
    version, expires, nonce, signature = cookie.split(".")
    later = int(expires) + 3600
    forged = [
        f"{version}.{later}.{nonce}.{signature}",  # a longer life under the old signature
        f"{version}.{expires}.{nonce}.{signature[:-2]}AA",
        f"{version}.{expires}.{nonce}",
        "garbage",
        "",
    ]
    dashboard = build_dashboard(ledger_store)
    for value in forged:
        response = await call(dashboard, "/dashboard", bearer=None,
                              cookie=f"{COOKIE_NAME}={value}")
        assert response.status == 303, value
    unchanged = build_dashboard(ledger_store)  # same key, clock before expiry
    sessions = Sessions(ADMIN_KEY, DashboardConfig(), clock=lambda: int(expires) + 1.0)
    assert not sessions.cookie_valid(cookie)
    assert Sessions(ADMIN_KEY, DashboardConfig(), clock=lambda: int(expires) - 1.0
                    ).cookie_valid(cookie)
    rotated = build_dashboard(ledger_store, admin_key="the-new-admin-key")
    response = await call(rotated, "/dashboard", bearer=None, cookie=f"{COOKIE_NAME}={cookie}")
    assert response.status == 303
    assert (await call(unchanged, "/dashboard", bearer=None,
                       cookie=f"{COOKIE_NAME}={cookie}")).status == 200


async def test_the_session_lasts_the_configured_hours(ledger_store: Store) -> None:
    issued_at = NOW.timestamp()
    sessions = Sessions(ADMIN_KEY, DashboardConfig(session_hours=2), clock=lambda: issued_at)
    cookie = sessions.issue()
    two_hours = timedelta(hours=2).total_seconds()
    assert Sessions(ADMIN_KEY, DashboardConfig(), clock=lambda: issued_at + two_hours - 1
                    ).cookie_valid(cookie)
    assert not Sessions(ADMIN_KEY, DashboardConfig(), clock=lambda: issued_at + two_hours
                        ).cookie_valid(cookie)


async def test_logout_clears_the_cookie(ledger_store: Store) -> None:
    cookie = await _login(ledger_store)
    dashboard = build_dashboard(ledger_store)
    response = await call(dashboard, "/dashboard/logout", method="POST", bearer=None,
                          cookie=f"{COOKIE_NAME}={cookie}")
    assert response.status == 303
    assert response.header("location") == "/dashboard/login"
    cleared = response.header("set-cookie") or ""
    assert cleared.startswith(f"{COOKIE_NAME}=;") and "Max-Age=0" in cleared


async def test_without_an_admin_key_the_dashboard_is_off(ledger_store: Store) -> None:
    dashboard = build_dashboard(ledger_store, admin_key=None)
    for target, method in (("/dashboard", "GET"), ("/dashboard/login", "GET"),
                           ("/dashboard/login", "POST")):
        response = await call(dashboard, target, method=method, bearer="", form=b"key=")
        assert response.status == 403
        assert 'id="disabled"' in response.text


def test_after_login_only_dashboard_paths_are_followed() -> None:
    assert safe_next("/dashboard/budgets?top=all") == "/dashboard/budgets?top=all"
    for hostile in ("https://evil.example/", "//evil.example/dashboard", "/dashboard//evil",
                    "/dashboard\\..\\x", "/admin/keys", None, ""):
        assert safe_next(hostile) == "/dashboard"


async def test_every_page_carries_a_strict_content_security_policy(ledger_store: Store) -> None:
    dashboard = build_dashboard(ledger_store)
    for target in ("/dashboard", "/dashboard/login", "/dashboard/static/dashboard.css"):
        response = await call(dashboard, target)
        policy = response.header("content-security-policy") or ""
        assert "default-src 'none'" in policy and "script-src" not in policy
        assert "frame-ancestors 'none'" in policy
        assert response.header("x-content-type-options") == "nosniff"
