"""Where alerts go: a log line, or a Slack-compatible webhook fed by a bounded queue.

``emit`` is called on the request path (through the policy engine's event sink), so no sink may
block there: the webhook sink only enqueues, and a background task does the HTTP work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp

from costwarden.monitor.alerts import Alert, AlertRouter, AlertSink
from costwarden.monitor.alerts_config import AlertsConfig

log = logging.getLogger("costwarden.alerts")

_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}
# Slack rejects a header over 150 characters and a section with more than 10 fields.
_HEADER_MAX = 150
_FIELDS_MAX = 10

Outcome = Literal["ok", "retry", "fatal"]


class LogSink:
    """One log line per alert, at a level that follows its severity."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or log

    def start(self) -> None:
        """Nothing to start: logging is synchronous and cheap."""

    def emit(self, alert: Alert) -> None:
        fields = ", ".join(f"{k}={v}" for k, v in alert.fields.items())
        self._log.log(
            _LEVELS[alert.severity],
            "alert %s [%s] %s: %s (scope=%s%s)",
            alert.kind,
            alert.severity,
            alert.title,
            alert.text,
            alert.scope,
            f"; {fields}" if fields else "",
        )

    async def close(self) -> None:
        """Nothing buffered."""


def slack_payload(alert: Alert) -> dict[str, Any]:
    """The alert as Slack incoming-webhook JSON: ``text`` for notifications, ``blocks`` to show."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": alert.title[:_HEADER_MAX]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": alert.text}},
    ]
    if alert.fields:
        items = list(alert.fields.items())[:_FIELDS_MAX]
        blocks.append(
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in items],
            }
        )
    context = f"{alert.severity} · {alert.kind} · {alert.scope}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return {"text": f"[{alert.severity}] {alert.title}: {alert.text}", "blocks": blocks}


class WebhookSink:
    """POSTs alerts to a webhook from a background task; ``emit`` only enqueues.

    The URL may carry a token, so only its host is ever logged, and exception texts (which
    aiohttp may fill with the URL) are reduced to their type name.
    """

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        *,
        queue_size: int = 1000,
        retry: tuple[int, float] = (4, 0.5),
        timeout_s: float = 10.0,
    ) -> None:
        self._url = url
        self._session = session
        self._attempts, self._backoff_s = retry
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self.host = urlsplit(url).hostname or "?"
        self.sent = 0
        self.failed = 0  # given up after all attempts, or refused with a 4xx
        self.dropped = 0  # the queue was full

    def start(self) -> None:
        """Start the delivery task (needs a running event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    def emit(self, alert: Alert) -> None:
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("alert webhook %s: queue full, dropped %s", self.host, alert.dedup_key)

    async def flush(self) -> None:
        """Wait until every queued alert has been delivered or given up on."""
        await self._queue.join()

    async def close(self, drain_s: float = 5.0) -> None:
        """Give queued alerts ``drain_s`` to go out, then stop the delivery task."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), drain_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _drain(self) -> None:
        while True:
            alert = await self._queue.get()
            try:
                await self._deliver(alert)
            finally:
                self._queue.task_done()

    async def _deliver(self, alert: Alert) -> None:
        payload = slack_payload(alert)
        for attempt in range(self._attempts):
            if attempt:
                await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1))
            outcome = await self._post(payload)
            if outcome == "ok":
                self.sent += 1
                return
            if outcome == "fatal":
                break
        self.failed += 1
        log.warning("alert webhook %s: gave up on %s", self.host, alert.dedup_key)

    async def _post(self, payload: dict[str, Any]) -> Outcome:
        try:
            async with self._session.post(self._url, json=payload, timeout=self._timeout) as resp:
                if resp.status < 300:
                    return "ok"
                log.warning("alert webhook %s answered HTTP %d", self.host, resp.status)
                # 5xx and 429 are the receiver's passing trouble; other 4xx will not get better.
                return "retry" if resp.status >= 500 or resp.status == 429 else "fatal"
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("alert webhook %s: %s", self.host, type(exc).__name__)
            return "retry"


def build_sinks(
    config: AlertsConfig, session: aiohttp.ClientSession, environ: dict[str, str]
) -> list[AlertSink]:
    """One sink per configured entry; a webhook whose URL variable is unset is skipped, loudly."""
    sinks: list[AlertSink] = []
    for entry in config.sinks:
        if entry.type == "log":
            sinks.append(LogSink(logging.getLogger(entry.logger)))
            continue
        url = environ.get(entry.url_env)
        if not url:
            log.warning("alert webhook: environment variable %s is not set", entry.url_env)
            continue
        sinks.append(
            WebhookSink(
                url,
                session,
                queue_size=entry.queue_size,
                retry=(entry.max_attempts, entry.backoff_s),
                timeout_s=entry.timeout_s,
            )
        )
    return sinks


def build_alerts(
    config: AlertsConfig,
    session: aiohttp.ClientSession,
    environ: dict[str, str],
    extra: Sequence[AlertSink] = (),
) -> AlertRouter | None:
    """The started alert router for ``config`` plus ``extra`` sinks (the gateway's alert log),
    or None when there is no sink at all (alerts off)."""
    sinks = [*extra, *build_sinks(config, session, environ)]
    if not sinks:
        return None
    router = AlertRouter(sinks, cooldown_s=config.cooldown_s)
    router.start()
    return router
