"""A fake OpenAI- and Anthropic-compatible LLM server for tests, benchmarks and demos.

Raw ASGI (no framework) on uvicorn + httptools, bodies built with orjson: fast enough that a
benchmark measures the gateway, not the fake.

Routes (matched on the path's *ending*, so ``/v1/...``, ``/openai/deployments/<d>/...`` Azure
paths and a doubled ``/v1/v1/...`` all work):
    POST …/chat/completions, …/completions, …/embeddings   OpenAI shapes, stream or not
    POST …/messages                                        Anthropic Messages, stream or not
    GET  …/models     OpenAI list; Anthropic list when the request has ``anthropic-version``
    …/files, …/batches  OpenAI's Files and Batch APIs (``providers/fake_batch.py``)

What it answers:
    * Prompt tokens = whitespace-separated words of all prompt text + 3 per message + 3
      (chat and messages; completions and embeddings: words only, at least 1 per input).
    * Output: ``output_tokens`` knob or the server default (16), capped by ``max_tokens`` /
      ``max_completion_tokens`` (legacy completions default to 16 like OpenAI) — finish
      reason ``length`` / ``max_tokens`` when capped. One word per token, same words each time.
    * Reasoning models (name starts with o1, o3, o4, gpt-5) spend half the output tokens on
      hidden reasoning: ``completion_tokens_details.reasoning_tokens``, not streamed.
    * Prompt cache: a prompt of >= 1024 tokens whose first 1024 words this server saw before
      reports 1024 cached tokens (OpenAI: ``prompt_tokens_details.cached_tokens``). Anthropic
      caches only requests containing ``cache_control``: the first sight reports 1024
      ``cache_creation_input_tokens``, a repeat 1024 ``cache_read_input_tokens``.
    * Model: echoed, except that a floating alias is reported as its dated snapshot
      (``MODEL_SNAPSHOTS``, e.g. ``gpt-4o-mini`` → ``gpt-4o-mini-2024-07-18``).
    * Streams: OpenAI sends a role chunk, one chunk per token, a finish chunk, a usage chunk
      with ``choices: []`` when ``stream_options.include_usage`` is set, then ``[DONE]``.
      Anthropic sends message_start, content_block_start, ping, content_block_delta per
      token, content_block_stop, message_delta (usage), message_stop.

Behaviour knobs, per request, through any of (later ones win):
    1. model suffix, query-string style:   ``"model": "gpt-4o-mini?status=503&latency_ms=20"``
       (useful in gateway config: ``upstream_model`` can make one endpoint always fail)
    2. a JSON body field:                   ``"x_fake": {"cut_after": 3}`` (SDK ``extra_body``)
    3. headers:                             ``x-fake-status: 429`` (SDK ``extra_headers``)
  status=4xx|5xx     error with the provider's error body shape
  latency_ms=N       wait before the response starts
  chunk_delay_ms=N   wait between stream events (each event is then its own write; without a
                     delay the whole stream goes out in one write)
  cut_after=N        close the connection after N content chunks: a real cut (incomplete
                     chunked body, no finish event, no usage, no [DONE]); for a non-stream
                     response, after half the body
  reset, malformed, retry_after, flaky   connection resets, bodies that are not what they
                     claim, Retry-After, errors then success: see ``fake_faults``
  no_usage=1         leave usage out (non-stream body, usage chunk, Anthropic usage fields)
  output_tokens=N    tokens to generate;  cached_tokens=N  cache reads to report
  reply=TEXT         answer with TEXT's words (one token each; ``output_tokens`` repeats or
                     cuts them): lets a test make a model refuse or hedge
  logprob=X          (X <= 0) when an OpenAI chat request has ``logprobs: true``, the answer
                     carries each token's logprob X (default -0.05) in OpenAI's shape,
                     ``choices[0].logprobs.content[i]`` (``top_logprobs`` lists the token
                     itself); streamed chunks carry their token's entry
Server-wide (``FakeUpstreamConfig``): ``fail_every=N`` answers every Nth API request with
``fail_status``; ``latency_ms`` / ``chunk_delay_ms`` defaults; ``api_key`` to require one.

The last ``record_last`` requests are kept in ``FakeUpstream.requests`` so tests can assert on
what the gateway sent. A cut makes uvicorn log "ASGI callable returned without completing
response." — that line is the cut, not a bug.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import orjson
import uvicorn

from costwarden.providers import fake_anthropic, fake_openai
from costwarden.providers.base import CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES
from costwarden.providers.fake_batch import FakeBatches
from costwarden.providers.fake_common import (
    CACHE_PREFIX_TOKENS,
    DEFAULT_LOGPROB,
    Answer,
    Generation,
    KnobError,
    Knobs,
    PrefixCache,
    PromptCount,
    body_knobs,
    generate,
    header_knobs,
    is_reasoning_model,
    response_model,
    split_model,
)
from costwarden.providers.fake_faults import FlakyCounter, Reply, error_headers, send_reply
from costwarden.providers.fake_requests import (
    HTTPReplyError,
    json_object,
    presented_keys,
    prompt_and_limit,
    route,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = (b"content-type", b"application/json")
_ID_PREFIXES = MappingProxyType({CHAT: "chatcmpl-", COMPLETIONS: "cmpl-", MESSAGES: "msg_01"})
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]


@dataclass(slots=True, frozen=True)
class FakeUpstreamConfig:
    default_output_tokens: int = 16
    latency_ms: float = 0.0
    chunk_delay_ms: float = 0.0
    fail_every: int = 0  # 0: never; N: every Nth API request fails with fail_status
    fail_status: int = 500
    api_key: str | None = None  # when set, requests without this key get a 401
    batch_delay_ms: float = 0.0  # Batch API: how long a batch stays in progress
    record_last: int = 256


@dataclass(slots=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names
    raw_body: bytes
    body: Any = None  # the parsed JSON body (None when absent or not JSON)


class FakeUpstream:
    """The ASGI app (call it) plus an in-process uvicorn lifecycle for tests."""

    def __init__(self, config: FakeUpstreamConfig | None = None) -> None:
        self.config = config or FakeUpstreamConfig()
        self.requests: deque[RecordedRequest] = deque(maxlen=self.config.record_last)
        self._default_knobs = Knobs(
            latency_ms=self.config.latency_ms, chunk_delay_ms=self.config.chunk_delay_ms
        )
        self._prefixes = PrefixCache()
        self._api_calls = 0
        self._flaky = FlakyCounter()
        self.batches = FakeBatches(self._batch_answer, delay_ms=self.config.batch_delay_ms)
        self._server: uvicorn.Server | None = None  # while started in-process
        self._task: asyncio.Task[None] | None = None
        self.base_url = ""  # "http://host:port" once started; add "/v1" for an OpenAI base

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0: any free port) inside the running loop.

        Returns ``base_url``, the server root: OpenAI clients and endpoint ``api_base`` values
        use ``base_url + "/v1"``; the Anthropic SDK takes ``base_url`` itself."""
        if self._task is not None:
            raise RuntimeError("fake upstream already started")
        sock = bind_socket(host, port)
        server = self._server = uvicorn.Server(uvicorn_config(self))
        self._task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if self._task.done():
                sock.close()
                await self._task  # re-raises why uvicorn could not start
                raise RuntimeError("fake upstream stopped during start-up")
            await asyncio.sleep(0.005)
        self.base_url = f"http://{_url_host(host)}:{sock.getsockname()[1]}"
        return self.base_url

    async def stop(self) -> None:
        if self._task is None or self._server is None:
            return
        self._server.should_exit = True
        try:
            await self._task
        finally:
            self._task = None
            self._server = None

    async def __aenter__(self) -> FakeUpstream:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = RecordedRequest(
            method=scope["method"],
            path=scope["path"],
            query=scope["query_string"].decode("latin-1"),
            headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
            raw_body=await _read_body(receive),
        )
        self.requests.append(request)
        api, anthropic = route(request.method, request.path, request.headers)
        reply, knobs = await self._reply(request, api, anthropic)
        reply.headers.append(
            (
                b"request-id" if anthropic else b"x-request-id",
                b"req_" + os.urandom(12).hex().encode(),
            )
        )
        await send_reply(send, reply, knobs)

    async def _reply(
        self, request: RecordedRequest, api: str | None, anthropic: bool
    ) -> tuple[Reply, Knobs]:
        errors = fake_anthropic.error_body if anthropic else fake_openai.error_body
        knobs = self._default_knobs
        try:
            if api is None:
                return self._non_api_reply(request, anthropic), knobs
            body = request.body = json_object(request.raw_body)
            knobs = self._knobs(request.headers, body)
            if knobs.latency_ms:
                await asyncio.sleep(knobs.latency_ms / 1000)
            self._check_failures(request, knobs)
            return self._answer(api, body, request.raw_body, knobs), knobs
        except HTTPReplyError as exc:
            error = errors(exc.status, str(exc) or None)
            return Reply(exc.status, error, None, [_JSON, *error_headers(knobs)]), knobs

    def _non_api_reply(self, request: RecordedRequest, anthropic: bool) -> Reply:
        batch = self.batches.handle(
            request.method, request.path, request.query, request.headers, request.raw_body
        )
        if batch is not None:  # OpenAI files and batches (providers/fake_batch.py)
            return Reply(batch.status, batch.body, None, batch.headers)
        if request.method == "GET" and request.path.endswith("/models"):
            build = fake_anthropic.models_list if anthropic else fake_openai.models_list
            return Reply(200, build(int(time.time())), None, [_JSON])
        raise HTTPReplyError(f"Unknown route {request.method} {request.path}", 404)

    def _batch_answer(self, api: str, body: dict[str, Any]) -> tuple[int, bytes]:
        """One line of a Batch API input, answered as the same request sent directly."""
        request = RecordedRequest("POST", "", "", {}, orjson.dumps(body), body)
        try:
            knobs = self._knobs({}, body)
            self._check_failures(request, knobs)
            return 200, self._answer(api, body, request.raw_body, knobs).body
        except HTTPReplyError as exc:
            return exc.status, fake_openai.error_body(exc.status, str(exc) or None)

    def _knobs(self, headers: Mapping[str, str], body: Mapping[str, Any]) -> Knobs:
        model = body.get("model")
        _, model_knobs = split_model(model) if isinstance(model, str) else ("", {})
        try:
            return (
                self._default_knobs.merged(model_knobs)
                .merged(body_knobs(body))
                .merged(header_knobs(headers))
            )
        except KnobError as exc:
            raise HTTPReplyError(str(exc)) from exc

    def _check_failures(self, request: RecordedRequest, knobs: Knobs) -> None:
        key = self.config.api_key
        if key is not None and key not in presented_keys(request.headers):
            raise HTTPReplyError("", 401)
        self._api_calls += 1
        every = self.config.fail_every
        if every and self._api_calls % every == 0:
            raise HTTPReplyError("", self.config.fail_status)
        if knobs.status is not None:
            raise HTTPReplyError("", knobs.status)
        if self._flaky.should_fail(knobs):
            raise HTTPReplyError("", knobs.flaky_status)

    def _answer(self, api: str, body: dict[str, Any], raw: bytes, knobs: Knobs) -> Reply:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise HTTPReplyError("'model' is required")
        base_model, _ = split_model(model)
        if api == EMBEDDINGS:
            return self._embeddings(base_model, body, knobs)
        prompt, max_tokens = prompt_and_limit(api, body)
        anthropic = api == MESSAGES
        cache_read, cache_write = self._cache_tokens(
            prompt, knobs, explicit=not anthropic or b"cache_control" in raw, writes=anthropic
        )
        answer = Answer(
            response_id=_ID_PREFIXES[api] + os.urandom(12).hex(),
            created=int(time.time()),
            model=response_model(base_model),
            prompt_tokens=prompt.tokens,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            generation=self._generation(
                knobs, max_tokens, is_reasoning_model(base_model) and not anthropic
            ),
            with_usage=not knobs.no_usage,
            logprob=_logprob(api, body, knobs),
        )
        return _render(api, answer, body)

    def _generation(self, knobs: Knobs, max_tokens: int | None, reasoning: bool) -> Generation:
        if knobs.reply is not None:
            words = tuple(knobs.reply.split())
            wanted = len(words) if knobs.output_tokens is None else knobs.output_tokens
            return generate(wanted, max_tokens, reasoning, words)
        if knobs.output_tokens is not None:
            return generate(knobs.output_tokens, max_tokens, reasoning)
        return generate(self.config.default_output_tokens, max_tokens, reasoning)

    def _cache_tokens(
        self, prompt: PromptCount, knobs: Knobs, *, explicit: bool, writes: bool
    ) -> tuple[int, int]:
        if knobs.cached_tokens is not None:
            return min(knobs.cached_tokens, prompt.tokens), 0
        if prompt.prefix_key is None or not explicit:
            return 0, 0
        if self._prefixes.seen_before(prompt.prefix_key):
            return CACHE_PREFIX_TOKENS, 0
        return 0, CACHE_PREFIX_TOKENS if writes else 0

    def _embeddings(self, model: str, body: dict[str, Any], knobs: Knobs) -> Reply:
        inputs = fake_openai.embedding_inputs(body.get("input"))
        if inputs is None:
            raise HTTPReplyError("'input' must be a string, a list of strings or token arrays")
        payload = fake_openai.embeddings(model, body, inputs, not knobs.no_usage)
        return Reply(200, payload, None, [_JSON])


def _logprob(api: str, body: Mapping[str, Any], knobs: Knobs) -> float | None:
    """Token logprobs are OpenAI chat's, and only sent when asked for."""
    if api != CHAT or body.get("logprobs") is not True:
        return None
    return DEFAULT_LOGPROB if knobs.logprob is None else knobs.logprob


def uvicorn_config(app: FakeUpstream, loop: str = "none") -> uvicorn.Config:
    # log_config=None: an in-process fake must not reconfigure the host process's logging.
    return uvicorn.Config(
        app,
        http="httptools",
        loop=loop,
        lifespan="off",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=1,
    )


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket; bound here so port 0 resolves before the server runs."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    while message.get("more_body"):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


def _render(api: str, answer: Answer, body: Mapping[str, Any]) -> Reply:
    if body.get("stream") is not True:
        build = {
            CHAT: fake_openai.chat_completion,
            COMPLETIONS: fake_openai.text_completion,
            MESSAGES: fake_anthropic.message,
        }[api]
        return Reply(200, build(answer), None, [_JSON])
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    if api == CHAT:
        plan = fake_openai.chat_stream(answer, include_usage)
    elif api == COMPLETIONS:
        plan = fake_openai.completion_stream(answer, include_usage)
    else:
        plan = fake_anthropic.message_stream(answer)
    return Reply(200, b"", plan, list(_SSE_HEADERS))


if __name__ == "__main__":
    from costwarden.providers.fake_process import main

    main()
