"""``GET /metrics``: the request metrics, plus the ledger writer's gauges, for Prometheus.

The request metrics are counted as requests finish (``monitor.metrics``); the ledger's numbers
are read only here, at scrape time, so they cost the request path nothing.

With ``metrics.require_admin_key`` the scraper must send the admin key as a bearer token
(Prometheus: ``authorization: {credentials_file: ...}``); without an admin key configured the
endpoint then answers 403, never open — the same rule as the admin API.
"""

from __future__ import annotations

import hmac
import os

from costwarden.errors import AuthenticationError, CostwardenError, PermissionDenied
from costwarden.gateway.asgi import Receive, Scope, Send, header, send_bytes, send_error
from costwarden.gateway.services import Services
from costwarden.ledger import Ledger
from costwarden.monitor.exposition import CONTENT_TYPE, Family, render
from costwarden.monitor.metrics import GatewayMetrics

_LEDGER_HELP = {
    "appended": "Final records appended to the spool.",
    "pending": "In-flight markers appended to the spool (one per request sent upstream).",
    "interrupted": "Rows of dead gateway processes marked interrupted by this one.",
    "lines_copied": "Spool lines copied into the ledger store (replays count again).",
    "bad_lines": "Undecodable spool lines skipped (torn writes).",
    "store_failures": "Failed attempts to copy the spool into the store (each retried).",
    "segments_adopted": "Spool segments of dead processes taken over and replayed.",
}


class MetricsEndpoint:
    def __init__(
        self, services: Services, metrics: GatewayMetrics, environ: dict[str, str] | None = None
    ) -> None:
        self._metrics = metrics
        self._ledger = services.ledger
        gateway = services.settings.gateway
        self._key_env = gateway.admin_key_env
        self._require_key = services.settings.metrics.require_admin_key
        env = os.environ if environ is None else environ
        self._admin_key = env.get(self._key_env) or None

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if self._require_key:
                self._authorise(scope)
        except CostwardenError as exc:
            await send_error(send, exc)
            return
        body = render([*self._metrics.families(), *self._runtime_families()])
        await send_bytes(send, 200, body, ((b"content-type", CONTENT_TYPE),))

    def _authorise(self, scope: Scope) -> None:
        if self._admin_key is None:
            raise PermissionDenied(
                f"/metrics needs the admin key (metrics.require_admin_key); set {self._key_env}"
            )
        auth = header(scope, b"authorization") or ""
        given = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if not given or not hmac.compare_digest(given.encode(), self._admin_key.encode()):
            raise AuthenticationError("invalid admin key")

    def _runtime_families(self) -> list[Family]:
        in_flight = Family(
            "costwarden_requests_in_flight",
            "gauge",
            "Requests sent upstream whose final record is not written yet.",
        )
        in_flight.add((), self._ledger.in_flight)
        started = Family(
            "costwarden_process_start_time_seconds",
            "gauge",
            "When this gateway process started counting, in Unix seconds.",
        )
        started.add((), self._metrics.started)
        return [in_flight, started, *ledger_families(self._ledger)]


def ledger_families(ledger: Ledger) -> list[Family]:
    """A counter per ``LedgerStats`` field described above: ``costwarden_ledger_<field>_total``."""
    stats = ledger.stats
    families = []
    for name, text in _LEDGER_HELP.items():
        family = Family(f"costwarden_ledger_{name}_total", "counter", text)
        family.add((), getattr(stats, name))
        families.append(family)
    return families
