"""A redis-server of a test's own, on a free port, that the test may stop, kill and restart.

The shared Redis (``COSTWARDEN_TEST_REDIS_URL``) serves other tests at the same time and must
never be stopped; fault tests start this one instead. It keeps nothing on disk (``--save ""
--appendonly no``), so a restart is exactly the data loss a Redis without persistence (or a
failover to an empty replica) inflicts.

    with private_redis(tmp_path) as server:
        ... server.url ...
        server.stop()      # SIGKILL: connections drop, nothing answers on the port
        server.start()     # same port, empty
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.procs import free_port, wait_for_port


class PrivateRedis:
    def __init__(self, directory: Path, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (scripts/services.sh installs it)")
        self._binary = binary
        self._directory = directory
        self._directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start (again) on the same port, with no data."""
        if self.running:
            raise RuntimeError("redis-server is already running")
        self.starts += 1
        log = open(self._directory / f"redis-{self.starts}.log", "wb")  # noqa: SIM115
        args = [self._binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        args += ["--dir", str(self._directory)]
        with log:
            self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self._proc)

    def stop(self) -> None:
        """Kill it (SIGKILL: no goodbye to clients, nothing saved)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)


@contextmanager
def private_redis(directory: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
