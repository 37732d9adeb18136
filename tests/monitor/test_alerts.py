"""The alert router's dedup and cool-down, the log sink, and policy events turned into alerts."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Literal

import pytest

from costwarden.monitor.alert_sinks import LogSink, build_alerts, slack_payload
from costwarden.monitor.alerts import (
    Alert,
    AlertRouter,
    PolicyAlertSink,
    alert_from_event,
)
from costwarden.monitor.alerts_config import AlertsConfig
from costwarden.policy.config import BudgetRule, PolicyConfig
from costwarden.policy.engine import AdmissionRequest, PolicyEngine
from costwarden.policy.events import BreakerEvent, BudgetEvent, PinEvent
from costwarden.records import Principal, Tags
from costwarden.state.base import usd_to_units_up
from costwarden.state.memory import MemoryStateBackend


class ListSink:
    """Records what the router delivered."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def start(self) -> None:
        pass

    def emit(self, alert: Alert) -> None:
        self.alerts.append(alert)

    async def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def alert(key: str = "k", **fields: str) -> Alert:
    return Alert("test", "warning", "Title", "Text", "scope", key, fields, 1.0)


def test_same_key_within_cooldown_is_suppressed_and_counted_then_realerts_with_the_count():
    clock, sink = Clock(), ListSink()
    router = AlertRouter([sink], cooldown_s=60, clock=clock)
    assert router.emit(alert("a"))
    clock.now += 30
    assert not router.emit(alert("a"))
    assert not router.emit(alert("a"))
    assert router.emit(alert("b"))  # another key is not held back by "a"
    clock.now += 30  # exactly the cool-down after the first delivery
    assert router.emit(alert("a"))
    assert [a.dedup_key for a in sink.alerts] == ["a", "b", "a"]
    assert router.suppressed == 2 and router.sent == 3
    assert sink.alerts[2].fields == {"suppressed repeats": "2"}
    assert "suppressed repeats" not in sink.alerts[0].fields


def test_a_failing_sink_does_not_stop_the_others_or_raise():
    class Broken(ListSink):
        def emit(self, alert: Alert) -> None:
            raise RuntimeError("boom")

    good = ListSink()
    router = AlertRouter([Broken(), good], cooldown_s=0)
    assert router.emit(alert())
    assert len(good.alerts) == 1


def test_log_sink_level_follows_severity(caplog: pytest.LogCaptureFixture):
    sink = LogSink(logging.getLogger("test.alerts"))
    with caplog.at_level(logging.INFO, logger="test.alerts"):
        sink.emit(Alert("x", "critical", "Down", "It broke", "s", "k", {"a": "1"}))
        sink.emit(Alert("x", "info", "Up", "It healed", "s", "k2"))
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.INFO]
    assert "Down: It broke (scope=s; a=1)" in caplog.records[0].getMessage()


def test_slack_payload_has_text_and_blocks():
    payload = slack_payload(alert(budget="ml", spent="$1.00"))
    assert payload["text"] == "[warning] Title: Text"
    types = [b["type"] for b in payload["blocks"]]
    assert types == ["header", "section", "section", "context"]
    assert payload["blocks"][2]["fields"][0] == {"type": "mrkdwn", "text": "*budget*\nml"}


def budget_event(
    pct: int | None,
    kind: Literal["threshold", "exhausted"] = "threshold",
    key: str = "budget:team=ml:month:2026-11",
) -> BudgetEvent:
    return BudgetEvent(kind, "ml", key, Decimal(100), Decimal("81.234"), pct, "2026-12-01", 5.0)


def test_policy_events_become_alerts_with_distinct_keys():
    threshold = alert_from_event(budget_event(80))
    assert threshold.severity == "warning" and threshold.title == "Budget ml passed 80%"
    assert threshold.fields["spent"] == "$81.23" and threshold.fields["resets at"] == "2026-12-01"
    exhausted = alert_from_event(budget_event(None, "exhausted"))
    assert exhausted.severity == "critical"
    next_month = alert_from_event(budget_event(80, key="budget:team=ml:month:2026-12"))
    keys = {threshold.dedup_key, exhausted.dedup_key, next_month.dedup_key}
    assert len(keys) == 3
    trip = alert_from_event(BreakerEvent("loop", "open", "s1", 1.0, {"limit": None, "n": 3}))
    assert trip.kind == "breaker.open" and trip.fields == {"n": "3"}
    healed = alert_from_event(BreakerEvent("loop", "closed", "s1", 2.0))
    assert healed.severity == "info" and healed.dedup_key != trip.dedup_key
    pin = alert_from_event(PinEvent("gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-2024-11-20", 1.0))
    assert pin.kind == "pin.mismatch" and pin.fields["reported"] == "gpt-4o-2024-11-20"


def request(cost: str) -> AdmissionRequest:
    return AdmissionRequest(
        principal=Principal(key_id="k-alice", user="alice", team="ml"),
        tags=Tags(),
        model="gpt-4o",
        estimated_input_tokens=100,
        max_output_tokens=None,
        worst_case_units=usd_to_units_up(Decimal(cost)),
    )


async def test_engine_budget_crossings_give_one_alert_per_threshold():
    sink = ListSink()
    router = AlertRouter([sink], cooldown_s=3600)
    config = PolicyConfig(budgets=(BudgetRule(name="ml-monthly", limit_usd=Decimal("1")),))
    state = MemoryStateBackend()
    engine = PolicyEngine(config, state, lambda: 1_795_000_000.0, events=PolicyAlertSink(router))
    for cost in ("0.30", "0.30", "0.30", "0.10", "0.0"):
        admission = await engine.admit(request(cost))
        await engine.settle(admission, Decimal(cost), 10)
    await state.aclose()
    assert [a.title for a in sink.alerts] == [
        "Budget ml-monthly passed 50%",
        "Budget ml-monthly passed 80%",
        "Budget ml-monthly passed 100%",
    ]
    assert router.suppressed == 0


async def test_no_sinks_means_alerts_off():
    assert build_alerts(AlertsConfig(), session=None, environ={}) is None  # type: ignore[arg-type]


def test_config_rejects_unknown_fields_and_sink_types():
    with pytest.raises(ValueError):
        AlertsConfig.model_validate({"sinks": [{"type": "email"}]})
    with pytest.raises(ValueError):
        AlertsConfig.model_validate({"cooldown": 5})
    config = AlertsConfig.model_validate(
        {"sinks": [{"type": "log"}, {"type": "webhook", "url_env": "HOOK"}], "cooldown_s": 60}
    )
    assert [s.type for s in config.sinks] == ["log", "webhook"]
