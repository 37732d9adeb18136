"""The fake upstream as separate processes: the CLI, several workers, and a hard kill."""

from __future__ import annotations

import httpx2
import pytest

from costwarden.providers.fake_process import run_in_subprocess

pytestmark = pytest.mark.slow

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def test_workers_serve_and_kill_drops_connections() -> None:
    with run_in_subprocess(workers=2, extra_args=["--output-tokens", "3"]) as upstream, \
            httpx2.Client(base_url=upstream.base_url) as http:
        for _ in range(4):
            resp = http.post("/v1/chat/completions", json=BODY)
            assert resp.status_code == 200
            assert resp.json()["usage"]["completion_tokens"] == 3
        upstream.kill()
        with pytest.raises(httpx2.TransportError):
            http.post("/v1/chat/completions", json=BODY)


def test_server_level_failure_option() -> None:
    with run_in_subprocess(extra_args=["--fail-every", "1", "--fail-status", "429"]) as upstream:
        resp = httpx2.post(upstream.base_url + "/v1/chat/completions", json=BODY)
    assert resp.status_code == 429
    assert resp.json()["error"]["code"] == "rate_limit_exceeded"
    assert upstream.process.returncode is not None  # stopped on leaving the block
