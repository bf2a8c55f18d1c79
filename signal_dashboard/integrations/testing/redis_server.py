"""A real ``redis-server`` on a free port of 127.0.0.1, for tests and benchmarks.

The server keeps nothing on disk (no RDB snapshots, no AOF), so a restart starts empty. It can
be stopped and started again on the same port, as a Redis outage in the middle of a stream is.
``redis-server`` itself comes from the system (``apt-get install redis-server``).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .processes import ProcessError, free_port, read_tail, stop_process, wait_until_ready

# A ping that fails should say so at once: redis-py retries, with backoff, by default.
PING_TIMEOUT = 1.0


class RedisServerNotFound(RuntimeError):
    """The ``redis-server`` command is not installed."""


class RedisServer:
    """One ``redis-server`` child process; ``start()`` it, or use it as a context manager."""

    def __init__(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RedisServerNotFound(
                "redis-server is not installed: run `python3 tests/run.py` (which installs it) "
                "or `apt-get install redis-server`"
            )
        self.executable = executable
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="signal-dashboard-redis-")
        self.log_path = Path(self._dir.name) / "redis.log"

    def start(self) -> None:
        """Start the server on ``self.port`` and wait until it answers PING."""
        if self.process is not None and self.process.poll() is None:
            raise ProcessError(f"redis-server is already running (pid {self.process.pid})")
        command = [
            self.executable,
            "--save",
            "",
            "--appendonly",
            "no",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--daemonize",
            "no",
            "--dir",
            self._dir.name,
        ]
        # Appended to, so the log of a restarted server still shows what came before.
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        wait_until_ready(self.process, self.ping, what="redis-server", output=self.output)

    def stop(self) -> None:
        """Terminate the server and wait for it; a no-op if it is not running."""
        if self.process is not None:
            stop_process(self.process)

    def ping(self) -> bool:
        """Whether a server answers PING at ``self.url`` right now."""
        client = redis.Redis.from_url(
            self.url,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=PING_TIMEOUT,
            socket_timeout=PING_TIMEOUT,
        )
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False
        finally:
            client.close()

    def output(self) -> str:
        """The end of the server's log."""
        return read_tail(self.log_path)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        self._dir.cleanup()
