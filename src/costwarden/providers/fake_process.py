"""Running the fake upstream as its own process(es): the CLI and a helper for tests.

    python -m costwarden.providers.fake_upstream --port 9000 --workers 2

The first line on stdout is ``fake upstream listening on http://host:port`` once the socket accepts
connections (port 0 picks a free one). With ``--workers N`` the parent binds the socket and
forks N uvicorn workers that share it; SIGTERM / SIGINT stop them all.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

import uvicorn

from costwarden.providers.fake_upstream import (
    FakeUpstream,
    FakeUpstreamConfig,
    bind_socket,
    uvicorn_config,
)

READY_PREFIX = "fake upstream listening on "


def _serve_socket(sock: socket.socket, config: FakeUpstreamConfig) -> None:
    uvicorn.Server(uvicorn_config(FakeUpstream(config), loop="uvloop")).run(sockets=[sock])


def _serve_worker(sock: socket.socket, config: FakeUpstreamConfig, parent_pid: int) -> None:
    # A worker must not outlive a parent killed with SIGKILL (it cannot forward that signal).
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True).start()
    _serve_socket(sock, config)


def _exit_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.2)
    os._exit(1)


def serve(config: FakeUpstreamConfig, host: str, port: int, workers: int) -> None:
    sock = bind_socket(host, port)
    url_host = f"[{host}]" if ":" in host else host
    print(f"{READY_PREFIX}http://{url_host}:{sock.getsockname()[1]}", flush=True)
    if workers <= 1:
        _serve_socket(sock, config)
        return
    context = multiprocessing.get_context("fork")  # the bound socket is inherited as is
    children = [
        context.Process(target=_serve_worker, args=(sock, config, os.getpid()), daemon=True)
        for _ in range(workers)
    ]
    for child in children:
        child.start()

    def stop_children(signum: int, frame: FrameType | None) -> None:
        for child in children:
            if child.is_alive():
                child.terminate()

    signal.signal(signal.SIGTERM, stop_children)
    signal.signal(signal.SIGINT, stop_children)
    for child in children:
        child.join()


def _parser() -> argparse.ArgumentParser:
    defaults = FakeUpstreamConfig()
    parser = argparse.ArgumentParser(
        prog="python -m costwarden.providers.fake_upstream",
        description="Fake OpenAI/Anthropic-compatible upstream.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--output-tokens", type=int, default=defaults.default_output_tokens)
    parser.add_argument("--latency-ms", type=float, default=defaults.latency_ms)
    parser.add_argument("--chunk-delay-ms", type=float, default=defaults.chunk_delay_ms)
    parser.add_argument("--fail-every", type=int, default=defaults.fail_every)
    parser.add_argument("--fail-status", type=int, default=defaults.fail_status)
    parser.add_argument("--batch-delay-ms", type=float, default=defaults.batch_delay_ms)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    config = FakeUpstreamConfig(
        default_output_tokens=args.output_tokens,
        latency_ms=args.latency_ms,
        chunk_delay_ms=args.chunk_delay_ms,
        fail_every=args.fail_every,
        fail_status=args.fail_status,
        batch_delay_ms=args.batch_delay_ms,
    )
    serve(config, args.host, args.port, args.workers)


@dataclass(slots=True)
class UpstreamProcess:
    """A fake upstream in a child process, for tests that kill or restart it."""

    process: subprocess.Popen[str]
    base_url: str

    def stop(self, timeout_s: float = 10.0) -> None:
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
        self._close_pipe()

    def kill(self) -> None:
        """SIGKILL to the whole process group: connections drop with no goodbye, like a
        crashed provider, and no worker is left behind."""
        self._signal(signal.SIGKILL)
        self.process.wait()
        self._close_pipe()

    def _signal(self, signum: int) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signum)  # its own session: see run_in_subprocess

    def _close_pipe(self) -> None:
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> UpstreamProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def run_in_subprocess(
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    workers: int = 1,
    extra_args: Sequence[str] = (),
    ready_timeout_s: float = 30.0,
) -> UpstreamProcess:
    """Start ``python -m costwarden.providers.fake_upstream`` and wait until it listens."""
    command = [
        sys.executable,
        "-m",
        "costwarden.providers.fake_upstream",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        *extra_args,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, start_new_session=True)
    if process.stdout is None:  # cannot happen with stdout=PIPE; narrows the type
        raise RuntimeError("no stdout pipe to the fake upstream")
    deadline = time.monotonic() + ready_timeout_s
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([process.stdout], [], [], left)
        if not readable:
            break
        line = process.stdout.readline()
        if not line:  # the child exited before it was ready
            break
        if line.startswith(READY_PREFIX):
            return UpstreamProcess(process, line[len(READY_PREFIX) :].strip())
    UpstreamProcess(process, "").stop()
    raise RuntimeError(f"fake upstream did not start (exit code {process.poll()})")
