"""A PostgreSQL server of a test's own (``initdb`` into a temporary directory, a free port),
that the test may stop and start again. Its data survives a stop: only availability changes.

The shared server (``COSTWARDEN_TEST_PG_DSN``) serves other tests at the same time and must
never be stopped; fault tests start this one instead. PostgreSQL refuses to run as root, so
when the tests run as root the server runs as the ``postgres`` user (``runuser``).

    with private_postgres() as server:
        ... server.dsn ...
        server.stop()
        server.start()
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.procs import free_port

_BIN_ROOT = Path("/usr/lib/postgresql")


def _bin_dir() -> Path:
    found = shutil.which("initdb")
    if found is not None:
        return Path(found).parent
    versions = sorted(_BIN_ROOT.glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    return versions[-1].parent


class PrivatePostgres:
    def __init__(self) -> None:
        self._bin = _bin_dir()
        # Not under pytest's tmp_path: its parents are private to root, and the server may
        # run as another user.
        self._root = Path(tempfile.mkdtemp(prefix="cw-pg-"))
        self._data = self._root / "data"
        self.port = free_port()
        self.running = False
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self._root, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self._data), "-U", "postgres", "--auth=trust", "-N")

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self.running = True
        options = f"-p {self.port} -k {self._root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self._root / "server.log")
        self._run("pg_ctl", "-D", str(self._data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        """Fast shutdown: open connections are cut, new ones refused until ``start``."""
        if not self.running:
            return
        self.running = False
        self._run("pg_ctl", "-D", str(self._data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        shutil.rmtree(self._root, ignore_errors=True)

    def _run(self, tool: str, *args: str) -> None:
        command = [*self._as_user, str(self._bin / tool), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=60)


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        server.remove()
