"""A real PostgreSQL server for the tests, in a temporary folder, on a free port of 127.0.0.1.

Debian's ``postgresql`` package (tests/run.py installs it) brings the server; this starts a
cluster of its own with ``initdb`` and ``pg_ctl`` and removes it afterwards. PostgreSQL refuses
to run as root: as root, the cluster belongs to the ``postgres`` user the package made, and its
commands run as that user (``runuser``).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from signal_dashboard.integrations.testing.processes import free_port

# How long pg_ctl waits for the server to start or stop (seconds).
START_TIMEOUT = 60


def _bin(name: str) -> str:
    """A PostgreSQL program: on the PATH, or in Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise RuntimeError(f"{name} is not installed: apt-get install -y postgresql")
    return found


class PostgresServer:
    """``with PostgresServer() as server:`` a running, empty cluster; ``server.settings`` is a
    Django ``DATABASES`` entry for its ``postgres`` database (tests create their own)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="signal-dashboard-pg-"))
        self.data = self.folder / "data"
        self._as_owner: list[str] = []

    @property
    def settings(self) -> dict[str, object]:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "postgres",
            "USER": "postgres",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
        }

    def _run(self, *command: str) -> None:
        subprocess.run(
            [*self._as_owner, *command], check=True, capture_output=True, timeout=START_TIMEOUT
        )

    def __enter__(self) -> PostgresServer:
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
            self._as_owner = ["runuser", "-u", "postgres", "--"]
        self._run(_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust")
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        try:
            self._run(
                _bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                str(self.folder / "log"), "-w", "-t", str(START_TIMEOUT), "start",
            )  # fmt: skip
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
