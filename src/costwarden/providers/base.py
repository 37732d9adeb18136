"""The one small interface every wire protocol implements.

An adapter knows how to address an upstream (URL, auth header, body changes such as asking
for a usage chunk in streams) and how to read usage back out of a response or a stream. It does
no I/O: the gateway owns the HTTP client, so adapters are pure and trivially testable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from costwarden.config import EndpointConfig
from costwarden.records import TokenUsage

# Client-facing APIs. Each adapter serves the ones of its own wire protocol.
CHAT = "chat.completions"
COMPLETIONS = "completions"
EMBEDDINGS = "embeddings"
MESSAGES = "messages"


@dataclass(slots=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class ParsedUsage:
    usage: TokenUsage | None  # None when the response carried no usage
    reported_model: str | None


class StreamTracker(Protocol):
    """Fed the raw bytes of an SSE stream as they pass through; never alters them."""

    def feed(self, chunk: bytes) -> None: ...

    @property
    def usage(self) -> TokenUsage | None:
        """Usage reported by upstream in the stream, once seen (None until then / if never)."""

    @property
    def reported_model(self) -> str | None: ...

    @property
    def text(self) -> str:
        """Generated text so far, for counting tokens when the stream is cut or lacks usage."""

    @property
    def finished(self) -> bool:
        """True once the stream's terminal event ([DONE] / message_stop) was seen."""


class ProviderAdapter(Protocol):
    name: str  # "openai" | "anthropic"
    apis: frozenset[str]  # client APIs this protocol serves

    def prepare(
        self,
        api: str,
        endpoint: EndpointConfig,
        body: dict[str, Any],
        api_key: str | None,
        stream: bool,
    ) -> UpstreamRequest:
        """Build the upstream call. ``body`` is the client's JSON with ``model`` already set
        to the endpoint's upstream model; the adapter may add fields (e.g. include_usage)."""

    def parse_usage(self, api: str, payload: dict[str, Any]) -> ParsedUsage:
        """Usage and model from a non-streamed JSON response."""

    def stream_tracker(self, api: str) -> StreamTracker: ...
