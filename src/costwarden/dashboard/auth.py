"""Who may see the dashboard: the admin key, given once at the login form or as a bearer token.

A login sets a signed session cookie instead of storing a session: the signing key is derived
from the admin key, so a cookie is valid on every replica that shares the admin key (no shared
session store needed) and stops being valid the moment the admin key is rotated. Logout clears
the cookie in the browser; a copied cookie stays valid until it expires, which is why the
lifetime is bounded (``dashboard.session_hours``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from costwarden.dashboard.config import DashboardConfig
from costwarden.gateway.asgi import Scope, header

COOKIE_NAME = "cw_dashboard"
COOKIE_PATH = "/dashboard"
_VERSION = "v1"
_SIGNING_CONTEXT = b"costwarden dashboard session v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def bearer_token(scope: Scope) -> str | None:
    auth = header(scope, b"authorization") or ""
    return auth[7:].strip() or None if auth[:7].lower() == "bearer " else None


def cookie_value(scope: Scope, name: str = COOKIE_NAME) -> str | None:
    """The named cookie of the request (first one wins), without any parsing library: a
    hostile Cookie header must never raise."""
    raw = header(scope, b"cookie") or ""
    for part in raw.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip('"')
    return None


class Sessions:
    """Checks the admin key and issues / verifies session cookies (see module docstring)."""

    def __init__(
        self,
        admin_key: str | None,
        config: DashboardConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._admin_key = admin_key.encode() if admin_key else None
        self._lifetime_s = int(config.session_hours * 3600)
        self._secure = config.secure_cookie
        self._clock = clock
        self._signing_key = (
            hmac.new(self._admin_key, _SIGNING_CONTEXT, hashlib.sha256).digest()
            if self._admin_key
            else None
        )

    @property
    def enabled(self) -> bool:
        return self._admin_key is not None

    def key_matches(self, given: str) -> bool:
        if self._admin_key is None or not given:
            return False
        return hmac.compare_digest(given.encode(), self._admin_key)

    def _sign(self, payload: str) -> str:
        assert self._signing_key is not None
        return _b64(hmac.new(self._signing_key, payload.encode(), hashlib.sha256).digest())

    def issue(self) -> str:
        """A new cookie value: version, expiry (epoch seconds), random nonce, signature."""
        expires = int(self._clock()) + self._lifetime_s
        payload = f"{_VERSION}.{expires}.{secrets.token_hex(8)}"
        return f"{payload}.{self._sign(payload)}"

    def cookie_valid(self, value: str | None) -> bool:
        if self._signing_key is None or not value:
            return False
        payload, _, signature = value.rpartition(".")
        parts = payload.split(".")
        if len(parts) != 3 or parts[0] != _VERSION or not parts[1].isdigit():
            return False
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return False
        return int(parts[1]) > self._clock()

    def authorised(self, scope: Scope) -> bool:
        """A valid session cookie, or the admin key as a bearer token (curl, scripts)."""
        token = bearer_token(scope)
        if token is not None:
            return self.key_matches(token)
        return self.cookie_valid(cookie_value(scope))

    def _secure_for(self, scope: Scope) -> bool:
        return self._secure if self._secure is not None else scope.get("scheme") == "https"

    def set_cookie(self, scope: Scope, value: str) -> tuple[bytes, bytes]:
        return self._cookie_header(scope, value, self._lifetime_s)

    def clear_cookie(self, scope: Scope) -> tuple[bytes, bytes]:
        return self._cookie_header(scope, "", 0)

    def _cookie_header(self, scope: Scope, value: str, max_age: int) -> tuple[bytes, bytes]:
        attributes = [
            f"{COOKIE_NAME}={value}",
            f"Path={COOKIE_PATH}",
            f"Max-Age={max_age}",
            "HttpOnly",
            "SameSite=Strict",
        ]
        if self._secure_for(scope):
            attributes.append("Secure")
        return b"set-cookie", "; ".join(attributes).encode()
