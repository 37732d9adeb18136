"""Real processes for tests that kill things: the fake upstream and the gateway."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port} after {timeout}s")


@contextmanager
def spawned(
    args: list[str], port: int, env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )
    try:
        wait_for_port(port, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if log:
            out.close()  # type: ignore[union-attr]


def fake_upstream(port: int, log: Path | None = None) -> Any:
    return spawned(fake_upstream_command(port), port, log=log)


def gateway(
    config: Path, port: int, env: dict[str, str] | None = None, log: Path | None = None
) -> Any:
    return spawned(gateway_command(config, port), port, env=env, log=log)


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def create_key(config: Path, user: str, team: str | None = None) -> str:
    args = [
        sys.executable,
        "-m",
        "costwarden",
        "keys",
        "create",
        "--config",
        str(config),
        "--user",
        user,
    ]
    if team:
        args += ["--team", team]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("key:"):
            return line.split(":", 1)[1].strip()
    raise RuntimeError(f"no key in output: {out!r}")


def fake_upstream_command(port: int, workers: int = 1) -> list[str]:
    """The fake upstream's command line; ``workers`` > 1 forks workers sharing one socket."""
    return [
        sys.executable,
        "-m",
        "costwarden.providers.fake_upstream",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def gateway_command(config: Path, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "costwarden",
        "serve",
        "--config",
        str(config),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


@contextmanager
def spawned_together(
    commands: list[tuple[list[str], int]], logs: Path | None = None
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start every ``(args, port)`` at once, then wait for all their ports.

    N gateways then start in about the time of one instead of N times it (start-up is mostly
    imports and tokenizer loading). ``logs``: a directory for ``proc-<port>.log`` files.
    Processes still running at exit get SIGTERM, then SIGKILL after 10 s.
    """
    outputs: list[Any] = []
    started: list[subprocess.Popen[bytes]] = []
    try:
        for args, port in commands:
            out = open(logs / f"proc-{port}.log", "wb") if logs else subprocess.DEVNULL  # noqa: SIM115
            outputs.append(out)
            started.append(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT))
        for proc, (_, port) in zip(started, commands, strict=True):
            wait_for_port(port, proc)
        yield started
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in started:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for out in outputs:
            if out is not subprocess.DEVNULL:
                out.close()
