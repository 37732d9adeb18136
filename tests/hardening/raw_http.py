"""A deliberately dumb HTTP/1.1 client: sends exactly the bytes it is given.

HTTP libraries refuse to send what hostile clients send (NUL and non-UTF-8 bytes in headers,
duplicated headers, a Content-Length that lies, bodies bigger than what they will buffer);
these tests need to send them, and read whatever comes back.
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

Headers = Iterable[tuple[bytes | str, bytes | str]]

_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


def request_head(method: str, path: bytes | str, host: str, headers: Headers) -> bytes:
    lines = [_bytes(method) + b" " + _bytes(path) + b" HTTP/1.1", b"host: " + host.encode()]
    lines += [_bytes(name) + b": " + _bytes(value) for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _connect(base_url: str) -> tuple[socket.socket, str]:
    parts = urlsplit(base_url)
    assert parts.hostname is not None and parts.port is not None
    sock = socket.create_connection((parts.hostname, parts.port), timeout=_TIMEOUT_S)
    return sock, parts.netloc


def _read(sock: socket.socket, method: str) -> Answer:
    response = http.client.HTTPResponse(sock, method=method)
    response.begin()
    body = response.read()
    headers = {k.lower(): v for k, v in response.getheaders()}
    return Answer(response.status, headers, body)


def send(
    base_url: str,
    method: str,
    path: bytes | str,
    headers: Headers = (),
    body: bytes = b"",
    *,
    content_length: bool = True,
) -> Answer:
    """One request, one connection. ``content_length=False``: the caller's headers frame the
    body (or lie about it)."""
    sock, host = _connect(base_url)
    with sock:
        extra: list[tuple[bytes | str, bytes | str]] = list(headers)
        if content_length:
            extra.append((b"content-length", str(len(body)).encode()))
        sock.sendall(request_head(method, path, host, extra) + body)
        return _read(sock, method)


@dataclass
class Upload:
    """What a streamed upload achieved before the server answered."""

    answer: Answer
    sent_before_answer: int


def stream_upload(
    base_url: str, path: str, headers: Headers, chunks: Iterator[bytes], *, chunked: bool
) -> Upload:
    """Send ``chunks`` from a second thread while this one waits for the answer, so that a
    server refusing early is seen answering before the upload ends (and a reset that follows
    its answer does not swallow it)."""
    sock, host = _connect(base_url)
    sent = [0]
    framing = [(b"transfer-encoding", b"chunked")] if chunked else []
    head = request_head("POST", path, host, [*headers, *framing])

    def pump() -> None:
        try:
            sock.sendall(head)
            for chunk in chunks:
                frame = b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk
                sock.sendall(frame)
                sent[0] += len(chunk)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:  # the server stopped reading and closed: what a refusal looks like
            return

    sender = threading.Thread(target=pump, daemon=True)
    with sock:
        sender.start()
        answer = _read(sock, "POST")
        at_answer = sent[0]
        sock.shutdown(socket.SHUT_RDWR)
    sender.join(_TIMEOUT_S)
    return Upload(answer, at_answer)
