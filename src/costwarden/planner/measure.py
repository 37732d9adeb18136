"""Measure an OpenAI-compatible server: output tokens/s and time to first token, by concurrency.

For each concurrency level, ``requests`` streamed chat completions of about ``input_tokens``
prompt tokens and ``output_tokens`` answer tokens are sent, ``concurrency`` at a time. A prompt
is one common word repeated (one token per word in the usual BPE vocabularies; the server's
reported ``prompt_tokens`` is printed so the approximation shows). The output count is the
stream's ``usage`` when the server sends it, else the content chunks received.

Per level: throughput = all output tokens ÷ wall time; TTFT = first content chunk − send;
decode speed per stream = (tokens − 1) ÷ (last chunk − first chunk). vLLM and similar servers
stop early at end-of-sequence unless told not to: ``extra_body`` ({"ignore_eos": true} on vLLM)
passes such options through.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
import orjson

from costwarden.planner.report import Explanation, fmt_hours

_WORD = "hello "


@dataclass(frozen=True, slots=True)
class MeasureOptions:
    base_url: str  # up to and including /v1
    model: str
    input_tokens: int = 512
    output_tokens: int = 128
    concurrency: tuple[int, ...] = (1, 4, 16)
    requests: int = 32  # per concurrency level
    api_key: str | None = None
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float = 300.0


@dataclass(frozen=True, slots=True)
class Sample:
    ok: bool
    prompt_tokens: int
    output_tokens: int
    ttft_s: float
    decode_tokens_per_s: float | None
    error: str = ""


@dataclass(frozen=True, slots=True)
class LevelResult:
    concurrency: int
    requests: int
    errors: int
    wall_s: float
    output_tokens: int
    prompt_tokens_mean: float
    ttft_p50_s: float
    ttft_p95_s: float
    decode_tokens_per_s: float  # mean per stream

    @property
    def tokens_per_s(self) -> float:
        return self.output_tokens / self.wall_s if self.wall_s else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "errors": self.errors,
            "wall_s": self.wall_s,
            "output_tokens": self.output_tokens,
            "tokens_per_s": self.tokens_per_s,
            "prompt_tokens_mean": self.prompt_tokens_mean,
            "ttft_p50_s": self.ttft_p50_s,
            "ttft_p95_s": self.ttft_p95_s,
            "decode_tokens_per_s": self.decode_tokens_per_s,
        }


@dataclass(frozen=True, slots=True)
class MeasureResult:
    options: MeasureOptions
    levels: tuple[LevelResult, ...]

    def best(self) -> LevelResult:
        return max(self.levels, key=lambda level: level.tokens_per_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_url": self.options.base_url,
            "model": self.options.model,
            "input_tokens": self.options.input_tokens,
            "output_tokens": self.options.output_tokens,
            "levels": [level.to_dict() for level in self.levels],
        }


def _body(options: MeasureOptions) -> bytes:
    prompt = (_WORD * max(options.input_tokens - 8, 1)).strip()  # ~8 tokens of chat framing
    body: dict[str, Any] = {
        "model": options.model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": options.output_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0,
        **options.extra_body,
    }
    return orjson.dumps(body)


async def _one(session: aiohttp.ClientSession, url: str, body: bytes) -> Sample:
    started = time.perf_counter()
    first = last = None
    chunks = 0
    usage: dict[str, Any] = {}
    try:
        async with session.post(url, data=body) as response:
            if response.status != 200:
                text = (await response.text())[:200]
                return Sample(False, 0, 0, 0.0, None, f"HTTP {response.status}: {text}")
            async for raw in response.content:
                line = raw.strip()
                if not line.startswith(b"data:") or line == b"data: [DONE]":
                    continue
                event = orjson.loads(line[5:])
                usage = event.get("usage") or usage
                if any((c.get("delta") or {}).get("content") for c in event.get("choices") or []):
                    last = time.perf_counter()
                    first = first or last
                    chunks += 1
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
        return Sample(False, 0, 0, 0.0, None, f"{type(exc).__name__}: {exc}")
    tokens = int(usage.get("completion_tokens") or chunks)
    if first is None or last is None:
        return Sample(False, 0, tokens, 0.0, None, "no content in the stream")
    decode = (tokens - 1) / (last - first) if tokens > 1 and last > first else None
    return Sample(True, int(usage.get("prompt_tokens") or 0), tokens, first - started, decode)


async def _level(
    session: aiohttp.ClientSession, options: MeasureOptions, concurrency: int
) -> LevelResult:
    url = options.base_url.rstrip("/") + "/chat/completions"
    body = _body(options)
    gate = asyncio.Semaphore(concurrency)

    async def run() -> Sample:
        async with gate:
            return await _one(session, url, body)

    started = time.perf_counter()
    samples = await asyncio.gather(*(run() for _ in range(options.requests)))
    wall = time.perf_counter() - started
    good = [s for s in samples if s.ok]
    ttfts = np.array([s.ttft_s for s in good]) if good else np.zeros(1)
    decodes = [s.decode_tokens_per_s for s in good if s.decode_tokens_per_s is not None]
    return LevelResult(
        concurrency,
        len(samples),
        len(samples) - len(good),
        wall,
        sum(s.output_tokens for s in good),
        float(np.mean([s.prompt_tokens for s in good])) if good else 0.0,
        float(np.percentile(ttfts, 50)),
        float(np.percentile(ttfts, 95)),
        float(np.mean(decodes)) if decodes else 0.0,
    )


async def measure(options: MeasureOptions) -> MeasureResult:
    headers = {"content-type": "application/json"}
    if options.api_key:
        headers["authorization"] = f"Bearer {options.api_key}"
    timeout = aiohttp.ClientTimeout(total=options.timeout_s)
    # A connection per request: on a reused connection some servers' small SSE writes meet the
    # client's delayed ACK (Nagle), bunching tokens ~40 ms late and faking TTFT and speed.
    connector = aiohttp.TCPConnector(limit=max(options.concurrency), force_close=True)
    async with aiohttp.ClientSession(
        headers=headers, timeout=timeout, connector=connector
    ) as session:
        levels = [await _level(session, options, c) for c in options.concurrency]
    return MeasureResult(options, tuple(levels))


def explain_measure(result: MeasureResult) -> Explanation:
    options = result.options
    out = Explanation(f"Measured {options.model} at {options.base_url}")
    out.assume(
        "request",
        f"~{options.input_tokens} prompt tokens, max {options.output_tokens} out",
        "prompt = one word repeated; the server's own prompt count is in the table",
    )
    out.assume("requests per level", options.requests)
    if options.extra_body:
        out.assume("extra body", orjson.dumps(dict(options.extra_body)).decode())
    out.step("throughput = output tokens of the level ÷ its wall time")
    for level in result.levels:
        out.step(
            f"concurrency {level.concurrency}: {level.output_tokens} tokens ÷ "
            f"{level.wall_s:.3f} s = {level.tokens_per_s:,.1f} tokens/s"
        )
    out.table(
        "By concurrency",
        (
            "concurrency",
            "requests",
            "errors",
            "prompt tokens",
            "output tokens/s",
            "TTFT p50",
            "TTFT p95",
            "decode tok/s per stream",
        ),
        [
            (
                lv.concurrency,
                lv.requests,
                lv.errors,
                f"{lv.prompt_tokens_mean:.0f}",
                f"{lv.tokens_per_s:,.1f}",
                fmt_hours(lv.ttft_p50_s),
                fmt_hours(lv.ttft_p95_s),
                f"{lv.decode_tokens_per_s:,.1f}",
            )
            for lv in result.levels
        ],
    )
    best = result.best()
    out.verdict = (
        f"{best.tokens_per_s:,.1f} output tokens/s at concurrency {best.concurrency}: use it as "
        f"throughput_tokens_per_s, or add to the catalog under gpus: <GPU>: throughput: "
        f"{{model_class: …, input_tokens: {options.input_tokens}, output_tokens: "
        f"{options.output_tokens}, tokens_per_s: {best.tokens_per_s:.0f}, as_of: <date>, "
        f"source: plan measure}}"
    )
    return out
