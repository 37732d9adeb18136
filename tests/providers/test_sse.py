"""The incremental SSE parser: any split of the same bytes gives the same events."""

from __future__ import annotations

import random

import pytest

from costwarden.providers.sse import DeferredText, SSEEvent, SSEParser

STREAM = (
    b": keep-alive comment\n"
    b"event: message_start\n"
    b'data: {"a": 1}\n'
    b"\n"
    b"data: first line\n"
    b"data:second line\n"
    b"data:  two spaces keep one\n"
    b"\n"
    b"event: lonely\n"
    b"\n"
    b"id: 7\n"
    b"retry: 100\n"
    b"data\n"
    b"\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    SSEEvent("message_start", b'{"a": 1}'),
    SSEEvent("", b"first line\nsecond line\n two spaces keep one"),
    SSEEvent("", b""),  # a bare "data" field is an empty data line: dispatched, empty
    SSEEvent("", b"[DONE]"),
]


def feed_in_pieces(stream: bytes, cuts: list[int]) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        events.extend(parser.feed(stream[start:cut]))
        start = cut
    return events


def test_whole_stream() -> None:
    assert SSEParser().feed(STREAM) == EXPECTED


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending_byte_by_byte(newline: bytes) -> None:
    stream = STREAM.replace(b"\n", newline)
    assert feed_in_pieces(stream, list(range(1, len(stream)))) == EXPECTED


def test_random_splits_match() -> None:
    rng = random.Random(1234)
    stream = STREAM.replace(b"\n", b"\r\n") * 5
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(1, 40)))
        assert feed_in_pieces(stream, cuts) == EXPECTED * 5


def test_crlf_split_between_chunks_is_one_line_end() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: x\r") == []
    assert parser.feed(b"") == []
    assert parser.feed(b"\n\r") == [SSEEvent("", b"x")]  # LF completes the CRLF; CR ends
    assert parser.feed(b"\n") == []  # ...and this LF completes that second CRLF
    assert parser.feed(b"data: y\n\n") == [SSEEvent("", b"y")]


def test_unfinished_event_is_held_back() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: {"partial": tr') == []
    assert parser.feed(b"ue}\n") == []
    assert parser.feed(b"\n") == [SSEEvent("", b'{"partial": true}')]


def test_deferred_text_extracts_on_demand_and_keeps_order() -> None:
    extracted: list[bytes] = []

    def extract(payload: bytes) -> str:
        extracted.append(payload)
        return payload.decode().upper()

    text = DeferredText(extract)
    text.add_raw(b"a")
    text.add_raw(b"b")
    assert extracted == []  # nothing decoded until someone asks
    text.add_text("-c-")
    text.add_raw(b"d")
    assert text.text == "AB-c-D"
    assert text.text == "AB-c-D"
    assert extracted == [b"a", b"b", b"d"]  # each payload decoded once


def test_deferred_text_resolves_early_past_its_memory_bound() -> None:
    extracted: list[bytes] = []

    def extract(payload: bytes) -> str:
        extracted.append(payload)
        return "x"

    text = DeferredText(extract, max_pending_bytes=10)
    for _ in range(4):
        text.add_raw(b"12345")
    assert len(extracted) == 3  # the third payload crossed 10 bytes
    assert text.text == "xxxx"
