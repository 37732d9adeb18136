"""The capture stage and its background writer without a gateway: sampling, what is handed
over, a full queue dropping with one log line instead of waiting, a failing database batch
logged and dropped, and close() storing what was queued."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from costwarden.config import LedgerConfig
from costwarden.distill.capture import CaptureStage
from costwarden.distill.config import CaptureConfig, FeatureCapture
from costwarden.distill.storage import CapturedPair, PairStore
from costwarden.distill.writer import CaptureWriter, Pending
from costwarden.records import Status, Tags, TokenUsage, UsageRecord
from costwarden.savings.stages import Exchange

AT = datetime(2026, 3, 1, tzinfo=UTC)
PAYLOAD = {"messages": [{"role": "user", "content": "Is my parcel late? Call +1 415 555 2671"}]}
ANSWER = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "No."}}]}


class MemoryPairs:
    """A ``PairStore`` in memory that can be told to block or to fail."""

    def __init__(self) -> None:
        self.stored: list[CapturedPair] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False
        self.closed = False

    async def insert(self, pairs: Sequence[CapturedPair]) -> None:
        await self.gate.wait()
        if self.fail:
            raise OSError("database is gone")
        self.stored.extend(pairs)

    async def close(self) -> None:
        self.closed = True


def _writer(store: MemoryPairs, **capture: Any) -> CaptureWriter:
    config = CaptureConfig(enabled=True, features={"support": FeatureCapture()}, **capture)

    async def open_store(_: LedgerConfig) -> PairStore:
        return store  # type: ignore[return-value]

    return CaptureWriter(config, LedgerConfig(), open_store)


def _pending(index: int, payload: dict[str, Any] = PAYLOAD) -> Pending:
    record = UsageRecord(f"cw-{index}", AT, "chat.completions", "gpt-4o", resolved_model="gpt-4o")
    record.usage = TokenUsage(input_tokens=12, output_tokens=2)
    return Pending("support", "chat.completions", payload, ANSWER, record)


async def test_pairs_are_stored_redacted_in_the_background() -> None:
    store = MemoryPairs()
    writer = _writer(store)
    assert writer.offer(_pending(1))
    assert writer.offer(
        _pending(2, {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})
    )
    await writer.flush()
    [pair] = store.stored  # the image request is not a text conversation: not kept
    assert pair.request_id == "cw-1" and pair.model == "gpt-4o"
    assert pair.messages[0]["content"] == "Is my parcel late? Call [PHONE]"
    assert (pair.input_tokens, pair.output_tokens) == (12, 2)
    await writer.close()
    assert store.closed


async def test_a_full_queue_drops_with_one_log_line_and_never_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryPairs()
    store.gate.clear()  # the database hangs
    writer = _writer(store, queue_size=2, batch_size=1)
    with caplog.at_level(logging.WARNING, "costwarden.distill"):
        results = [writer.offer(_pending(i)) for i in range(6)]
        await asyncio.sleep(0)  # the writer takes one item and blocks on the database
        results.append(writer.offer(_pending(6)))
    assert results[:2] == [True, True] and results[2:6] == [False] * 4
    assert writer.dropped == 4
    drops = [r for r in caplog.records if "capture queue full" in r.getMessage()]
    assert len(drops) == 1  # one line per burst, not one per request
    store.gate.set()
    await writer.close()
    assert [p.request_id for p in store.stored] == ["cw-0", "cw-1", "cw-6"]


async def test_a_failed_batch_is_logged_and_the_writer_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryPairs()
    store.fail = True
    writer = _writer(store)
    with caplog.at_level(logging.ERROR, "costwarden.distill"):
        writer.offer(_pending(1))
        await writer.flush()
    assert "storing 1 pairs failed" in caplog.text
    store.fail = False
    writer.offer(_pending(2))
    await writer.close()
    assert [p.request_id for p in store.stored] == ["cw-2"]


def _exchange(feature: str | None, api: str = "chat.completions") -> Exchange:
    record = UsageRecord("cw-x", AT, api, "gpt-4o", tags=Tags(feature=feature))
    return Exchange(api, dict(PAYLOAD), "gpt-4o", False, record, {})


async def test_the_stage_samples_and_hands_over_only_ok_answers() -> None:
    features = {"support": FeatureCapture(sample_rate=0.5), "off": FeatureCapture(enabled=False)}
    config = CaptureConfig(enabled=True, features=features)
    store = MemoryPairs()
    stage = CaptureStage(config, _writer(store), rng=random.Random(7))
    assert stage.features == frozenset({"support"})
    kept = 0
    for _ in range(400):
        ex = _exchange("support")
        await stage.on_request(ex)
        kept += ex.keep_answer
    assert 160 < kept < 240  # about half, from a seeded generator
    for ex in (_exchange("off"), _exchange(None), _exchange("support", "embeddings")):
        await stage.on_request(ex)
        assert not ex.keep_answer
    ex = _exchange("support")
    ex.notes["capture"] = "support"
    ex.record.status = Status.UPSTREAM_ERROR
    await stage.on_answer(ex, ANSWER)
    await stage.close()
    assert store.stored == []
