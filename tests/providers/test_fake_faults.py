"""The fake upstream's fault knobs, seen from a plain HTTP client."""

from __future__ import annotations

import aiohttp
import orjson
import pytest

from costwarden.providers.fake_faults import JUNK_EVENTS
from costwarden.providers.fake_upstream import FakeUpstream

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


async def _post(
    fake: FakeUpstream, knobs: dict[str, object], stream: bool = False
) -> tuple[int, dict[str, str], bytes]:
    body = {**CHAT, "stream": stream, "x_fake": knobs}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{fake.base_url}/v1/chat/completions", json=body) as resp,
    ):
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.read()


async def test_flaky_fails_the_first_n_tries_of_one_id_then_answers() -> None:
    async with FakeUpstream() as fake:
        knobs = {"flaky": 2, "flaky_id": "a", "flaky_status": 429, "retry_after": 0.5}
        statuses = [(await _post(fake, knobs))[:2] for _ in range(3)]
        assert [s for s, _ in statuses] == [429, 429, 200]
        assert statuses[0][1]["retry-after"] == "0.5"
        assert (await _post(fake, {**knobs, "flaky_id": "b"}))[0] == 429  # its own count


async def test_malformed_unary_is_not_json_and_streams_carry_junk() -> None:
    async with FakeUpstream() as fake:
        status, _, body = await _post(fake, {"malformed": 1})
        assert status == 200
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(body)
        _, _, streamed = await _post(fake, {"malformed": 1}, stream=True)
        assert all(junk in streamed for junk in JUNK_EVENTS)
        assert streamed.endswith(b"data: [DONE]\n\n")


async def test_resets_drop_the_connection() -> None:
    async with FakeUpstream() as fake:
        with pytest.raises(aiohttp.ClientError):
            await _post(fake, {"reset": "headers"})
        with pytest.raises(aiohttp.ClientPayloadError):
            await _post(fake, {"reset": "body", "cut_after": 2}, stream=True)
        assert (await _post(fake, {}))[0] == 200  # the server itself is fine
