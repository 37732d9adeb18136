"""The fake upstream over real HTTP, driven by the official OpenAI and Anthropic SDKs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import httpx2
import openai
import pytest
import pytest_asyncio
from anthropic.types import TextBlockParam
from openai.types.chat import ChatCompletionMessageParam

from costwarden.providers.fake_common import CACHE_PREFIX_TOKENS, MESSAGE_OVERHEAD_TOKENS
from costwarden.providers.fake_requests import presented_keys
from costwarden.providers.fake_upstream import FakeUpstream, FakeUpstreamConfig

SYSTEM = "You are terse."
QUESTION = "what does this cost per month"


# One server for the module (start/stop costs ~0.2 s); every test uses its own prompts.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as fake:
        yield fake


@pytest_asyncio.fixture(loop_scope="module")
async def client(upstream: FakeUpstream) -> AsyncIterator[openai.AsyncOpenAI]:
    async with oai(upstream) as sdk:
        yield sdk


@pytest_asyncio.fixture(loop_scope="module")
async def claude(upstream: FakeUpstream) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with ant(upstream) as sdk:
        yield sdk


def oai(up: FakeUpstream, key: str = "sk-test") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=key, base_url=up.base_url + "/v1", max_retries=0)


def ant(up: FakeUpstream, key: str = "sk-ant-test") -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key=key, base_url=up.base_url, max_retries=0)


def chat_prompt_tokens(*texts: str) -> int:
    """The documented rule: words + 3 per message + 3."""
    words = sum(len(t.split()) for t in texts)
    return words + MESSAGE_OVERHEAD_TOKENS * (len(texts) + 1)


MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]


async def test_chat_completion(upstream: FakeUpstream, client: openai.AsyncOpenAI) -> None:
    resp = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert resp.model == "gpt-4o-mini-2024-07-18"  # floating alias → dated snapshot
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == chat_prompt_tokens(SYSTEM, QUESTION)
    assert resp.usage.completion_tokens == FakeUpstreamConfig().default_output_tokens
    text = resp.choices[0].message.content
    assert text is not None
    assert len(text.split()) == resp.usage.completion_tokens
    recorded = upstream.requests[-1]
    assert recorded.path == "/v1/chat/completions"
    assert recorded.headers["authorization"] == "Bearer sk-test"
    assert recorded.body["messages"] == MESSAGES


async def test_chat_stream_with_usage_matches_non_stream(client: openai.AsyncOpenAI) -> None:
    plain = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]
    content = [c.choices[0].delta.content for c in chunks
               if c.choices and c.choices[0].delta.content]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage == plain.usage
    assert "".join(content) == plain.choices[0].message.content
    assert plain.usage is not None
    assert len(content) == plain.usage.completion_tokens
    assert all(c.model == "gpt-4o-2024-08-06" for c in chunks)


async def test_stream_without_include_usage_has_no_usage(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(c.usage is None and c.choices for c in chunks)


async def test_reasoning_model_and_token_limit(client: openai.AsyncOpenAI) -> None:
    resp = await client.chat.completions.create(
        model="o4-mini", messages=MESSAGES, max_completion_tokens=10)
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 10
    assert resp.usage.completion_tokens_details is not None
    assert resp.usage.completion_tokens_details.reasoning_tokens == 5


async def test_repeated_long_prompt_reports_cached_tokens(client: openai.AsyncOpenAI) -> None:
    long_prompt = "context " * 1500
    first, second = [
        await client.chat.completions.create(
            model="gpt-4.1", messages=[{"role": "user", "content": long_prompt}])
        for _ in range(2)
    ]
    assert first.usage is not None and second.usage is not None
    assert first.usage.prompt_tokens_details is not None
    assert second.usage.prompt_tokens_details is not None
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert second.usage.prompt_tokens_details.cached_tokens == CACHE_PREFIX_TOKENS
    assert second.usage.prompt_tokens == first.usage.prompt_tokens


async def test_completions_embeddings_and_models(client: openai.AsyncOpenAI) -> None:
    comp = await client.completions.create(model="gpt-3.5-turbo-instruct", prompt="say hi")
    assert comp.usage is not None
    assert comp.usage.prompt_tokens == 2
    assert comp.usage.completion_tokens == 16  # OpenAI's default max_tokens for /completions
    assert comp.model == "gpt-3.5-turbo-instruct"  # not a floating alias: echoed verbatim
    # The SDK asks for base64 by default and decodes it; ask for floats too.
    b64 = await client.embeddings.create(model="text-embedding-3-small", input=["a b", "c"])
    floats = await client.embeddings.create(model="text-embedding-3-small", input=["a b", "c"],
                                            encoding_format="float")
    assert [len(d.embedding) for d in b64.data] == [1536, 1536]
    assert b64.usage.prompt_tokens == 3
    for left, right in zip(b64.data, floats.data, strict=True):
        assert left.embedding == pytest.approx(right.embedding, abs=1e-6)
    assert b64.data[0].embedding != b64.data[1].embedding
    assert sum(v * v for v in floats.data[0].embedding) == pytest.approx(1.0)
    small = await client.embeddings.create(model="text-embedding-3-large", input="x",
                                           dimensions=8, encoding_format="float")
    assert len(small.data[0].embedding) == 8
    models = [m.id async for m in client.models.list()]
    assert {"gpt-4o-mini", "gpt-4o-mini-2024-07-18"} <= set(models)


async def test_azure_client_path_key_and_version(upstream: FakeUpstream) -> None:
    async with openai.AsyncAzureOpenAI(
        api_key="azure-key", azure_endpoint=upstream.base_url, api_version="2024-10-21",
        azure_deployment="prod-4o", max_retries=0,
    ) as azure:
        resp = await azure.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert resp.model == "gpt-4o-2024-08-06"
    recorded = upstream.requests[-1]
    assert recorded.path == "/openai/deployments/prod-4o/chat/completions"
    assert recorded.query == "api-version=2024-10-21"
    assert recorded.headers["api-key"] == "azure-key"


@pytest.mark.parametrize(("how", "status", "error"), [
    ("header", 429, openai.RateLimitError),
    ("body", 500, openai.InternalServerError),
    ("model", 503, openai.InternalServerError),
    ("header", 400, openai.BadRequestError),
    ("body", 404, openai.NotFoundError),
])
async def test_openai_error_knobs(
    client: openai.AsyncOpenAI, how: str, status: int, error: type[openai.APIStatusError]
) -> None:
    model = f"gpt-4o-mini?status={status}" if how == "model" else "gpt-4o-mini"
    with pytest.raises(error) as raised:
        await client.chat.completions.create(
            model=model, messages=MESSAGES,
            extra_headers={"x-fake-status": str(status)} if how == "header" else None,
            extra_body={"x_fake": {"status": status}} if how == "body" else None)
    assert raised.value.status_code == status
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["message"]  # OpenAI's {"error": {...}} shape, unwrapped by the SDK


async def test_bad_knob_and_bad_request_are_400(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="unknown fake knob"):
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_body={"x_fake": {"colour": 1}})
    with pytest.raises(openai.BadRequestError, match="messages"):
        await client.chat.completions.create(model="gpt-4o-mini", messages=[])


async def test_no_usage_knob(client: openai.AsyncOpenAI) -> None:
    resp = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-fake-no-usage": "1"})
    assert resp.usage is None
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True,
        stream_options={"include_usage": True}, extra_body={"x_fake": {"no_usage": True}})
    chunks = [c async for c in stream]
    assert chunks
    assert all(c.usage is None for c in chunks)


async def test_cut_stream_raises_in_openai_sdk(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True,
        stream_options={"include_usage": True},
        extra_body={"x_fake": {"cut_after": 3, "chunk_delay_ms": 1}})
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):  # the SDK wraps httpx's protocol error
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert len(received) == 3


async def test_cut_non_stream_response_raises(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-fake-cut-after": "0"})


async def test_server_level_failures_and_required_key() -> None:
    config = FakeUpstreamConfig(fail_every=2, fail_status=503, api_key="right-key")
    async with FakeUpstream(config) as up, oai(up, key="wrong") as wrong, \
            oai(up, key="right-key") as right:
        with pytest.raises(openai.AuthenticationError):
            await wrong.chat.completions.create(model="m", messages=MESSAGES)
        outcomes = []
        for _ in range(4):
            try:
                await right.chat.completions.create(model="m", messages=MESSAGES)
                outcomes.append(200)
            except openai.InternalServerError as exc:
                outcomes.append(exc.status_code)
    assert outcomes == [200, 503, 200, 503]


async def test_anthropic_message(upstream: FakeUpstream, claude: anthropic.AsyncAnthropic) -> None:
    msg = await claude.messages.create(
        model="claude-haiku-4-5", max_tokens=5, system=SYSTEM,
        messages=[{"role": "user", "content": QUESTION}])
    assert msg.model == "claude-haiku-4-5-20251001"
    assert msg.stop_reason == "max_tokens"
    assert msg.usage.output_tokens == 5
    assert msg.usage.input_tokens == chat_prompt_tokens(SYSTEM, QUESTION) - MESSAGE_OVERHEAD_TOKENS
    recorded = upstream.requests[-1]
    assert "sk-ant-test" in presented_keys(recorded.headers)  # x-api-key or bearer, by SDK
    assert "anthropic-version" in recorded.headers


async def test_anthropic_stream_matches_non_stream(claude: anthropic.AsyncAnthropic) -> None:
    kwargs = {"model": "claude-haiku-4-5", "max_tokens": 100,
              "messages": [{"role": "user", "content": QUESTION}]}
    plain = await claude.messages.create(**kwargs)  # type: ignore[call-overload]
    async with claude.messages.stream(**kwargs) as stream:  # type: ignore[arg-type]
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    assert "content_block_delta" in kinds
    assert [b.text for b in final.content if b.type == "text"] == [
        b.text for b in plain.content if b.type == "text"]
    assert final.usage.output_tokens == plain.usage.output_tokens
    assert final.usage.input_tokens == plain.usage.input_tokens


async def test_anthropic_prompt_cache_write_then_read(claude: anthropic.AsyncAnthropic) -> None:
    system: list[TextBlockParam] = [
        {"type": "text", "text": "manual " * 1200, "cache_control": {"type": "ephemeral"}}]
    first, second = [
        await claude.messages.create(model="claude-haiku-4-5", max_tokens=4, system=system,
                                     messages=[{"role": "user", "content": "q"}])
        for _ in range(2)
    ]
    assert first.usage.cache_creation_input_tokens == CACHE_PREFIX_TOKENS
    assert first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == CACHE_PREFIX_TOKENS
    assert second.usage.cache_creation_input_tokens == 0
    assert first.usage.input_tokens == second.usage.input_tokens


@pytest.mark.parametrize(("status", "error"), [
    (429, anthropic.RateLimitError),
    (529, anthropic.OverloadedError),
    (500, anthropic.InternalServerError),
    (401, anthropic.AuthenticationError),
])
async def test_anthropic_errors(
    claude: anthropic.AsyncAnthropic, status: int, error: type[anthropic.APIStatusError]
) -> None:
    with pytest.raises(error) as raised:
        await claude.messages.create(
            model="claude-haiku-4-5", max_tokens=4, messages=[{"role": "user", "content": "q"}],
            extra_headers={"x-fake-status": str(status)})
    assert raised.value.status_code == status
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["type"] == "error"


async def test_anthropic_requires_max_tokens(upstream: FakeUpstream) -> None:
    # The SDK will not send a request without max_tokens, so post one directly.
    async with httpx2.AsyncClient() as http:
        raw = await http.post(upstream.base_url + "/v1/messages", json={
            "model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "q"}]})
    assert raw.status_code == 400
    assert raw.json()["error"] == {"type": "invalid_request_error",
                                   "message": "max_tokens: Field required"}


async def test_cut_stream_raises_in_anthropic_sdk(claude: anthropic.AsyncAnthropic) -> None:
    texts: list[str] = []
    # Older anthropic SDKs let httpx's error through; 2.17 (seen here) wraps it in its own.
    with pytest.raises((httpx2.RemoteProtocolError, anthropic.APIConnectionError)):
        async with claude.messages.stream(
            model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "q"}],
            extra_headers={"x-fake-cut-after": "4"},
        ) as stream:
            async for text in stream.text_stream:
                texts.append(text)
    assert len(texts) == 4


async def test_anthropic_models_list(claude: anthropic.AsyncAnthropic) -> None:
    models = [m.id async for m in claude.models.list()]
    assert "claude-haiku-4-5-20251001" in models
    assert all(m.startswith("claude") for m in models)
