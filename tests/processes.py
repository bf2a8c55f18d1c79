"""Run the test project in other processes: migrations, commands, a Daphne server, a login.

Every child runs ``sys.executable`` from the repository root with ``tests.settings_redis``,
which reads the Redis URL and the database file from the environment (see ``project_env()``),
so separate processes share one SQLite file and one Redis server. Typical use::

    migrate(db_path, redis_server.url)
    with DaphneServer(db_path, redis_server.url) as server:
        session_key = session_cookie(db_path, redis_server.url, "admin", "pw")
        socket = await open_dashboard_socket(server.ws_url, session_key, server.url)

Nothing here touches the test process's own settings or database connections.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

REPO = Path(__file__).resolve().parent.parent
SETTINGS_MODULE = "tests.settings_redis"

# How long a server may take to come up, and to go down before it is killed (seconds).
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# Readiness is polled: nothing tells us when a child starts listening.
POLL_INTERVAL = 0.05
# How much of a child's output an error message quotes.
OUTPUT_TAIL = 4000

# tests/settings.py keeps Django's default SESSION_COOKIE_NAME.
SESSION_COOKIE_NAME = "sessionid"
DASHBOARD_SOCKET_PATH = "/ws/signals/"

# tests/asgi.py imports models before it calls get_asgi_application(), so Daphne's CLI cannot
# import it on its own: set Django up first, then hand over to the CLI with our arguments.
_DAPHNE = (
    "import django; django.setup(); from daphne.cli import CommandLineInterface; "
    "CommandLineInterface.entrypoint()"
)

_SESSION = """
import sys

import django

django.setup()

from django.contrib.auth import get_user_model
from django.test import Client

username, password, cookie_name = sys.argv[1:]
User = get_user_model()
if not User.objects.filter(username=username).exists():
    User.objects.create_user(username, password=password, is_staff=True)
client = Client()
if not client.login(username=username, password=password):
    sys.exit(f"cannot log in as {username!r}")
print(client.cookies[cookie_name].value)
"""


class ProcessError(RuntimeError):
    """A child process did not come up, or exited when it should not have."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def project_env(db_path: Path | str, redis_url: str) -> dict[str, str]:
    """This process's environment, pointed at ``tests.settings_redis``, the DB and Redis."""
    python_path = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        "SIGNAL_DASHBOARD_TEST_REDIS_URL": redis_url,
        "SIGNAL_DASHBOARD_TEST_DB": str(db_path),
        "PYTHONPATH": os.pathsep.join(python_path),
    }


def run_command(
    args: list[str], db_path: Path | str, redis_url: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m django <args>`` in the project's environment; the caller checks the result."""
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=REPO,
        env=project_env(db_path, redis_url),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def migrate(db_path: Path | str, redis_url: str) -> subprocess.CompletedProcess[str]:
    """Create (or bring up to date) the shared database at ``db_path``."""
    result = run_command(["migrate", "--noinput"], db_path, redis_url, timeout=120)
    result.check_returncode()
    return result


def session_cookie(db_path: Path | str, redis_url: str, username: str, password: str) -> str:
    """The key of a logged-in session of staff user ``username``, created if missing."""
    result = subprocess.run(
        [sys.executable, "-c", _SESSION, username, password, SESSION_COOKIE_NAME],
        cwd=REPO,
        env=project_env(db_path, redis_url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise ProcessError(f"cannot make a session for {username!r}:\n{result.stderr}")
    return result.stdout.split()[-1]


def http_get(url: str, timeout: float = 10) -> tuple[int, str]:
    """(status, body) of a GET, straight to the server: no proxy from the environment."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        connection.request("GET", target or "/")
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


async def open_dashboard_socket(ws_url: str, session_key: str, origin: str) -> ClientConnection:
    """The dashboard's WebSocket, opened as the session's user; close it when done.

    ``origin`` must be the server's own (``DaphneServer.url`` is): the socket refuses others.
    """
    return await connect(
        ws_url + DASHBOARD_SOCKET_PATH,
        origin=Origin(origin),
        additional_headers={"Cookie": f"{SESSION_COOKIE_NAME}={session_key}"},
        proxy=None,
    )


def stop_process(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """Terminate ``process``, killing it if it is still there after ``timeout`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until_ready(
    process: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    *,
    what: str,
    output: Callable[[], str],
    timeout: float = START_TIMEOUT,
) -> None:
    """Poll ``ready()`` until true; fail at once if ``process`` exits, or after ``timeout``.

    On failure the process is stopped: a half-started server must not outlive the test.
    """
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if time.monotonic() > deadline:
                raise ProcessError(f"{what} not ready after {timeout:g} s; output:\n{output()}")
            try:
                # Waiting on the process, not sleeping: an early exit is reported at once.
                returncode = process.wait(timeout=POLL_INTERVAL)
            except subprocess.TimeoutExpired:
                continue
            raise ProcessError(f"{what} exited with code {returncode}; output:\n{output()}")
    except BaseException:
        stop_process(process)
        raise


def read_tail(path: Path) -> str:
    """The end of a log file, or nothing if there is none yet."""
    try:
        return path.read_text(errors="replace")[-OUTPUT_TAIL:]
    except FileNotFoundError:
        return ""


class DaphneServer:
    """``tests.asgi:application`` served by Daphne in a child process, on a free port.

    The database at ``db_path`` must be migrated first (``migrate()``): readiness is a 200
    from ``/toppings/``, which lists the toppings.
    """

    def __init__(self, db_path: Path | str, redis_url: str) -> None:
        self.db_path = Path(db_path)
        self.redis_url = redis_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        # A file, not a pipe: nobody reads a pipe while the server runs, and once full it
        # would block the server's logging (an access-log line per request).
        self._logs = tempfile.TemporaryDirectory(prefix="signal-dashboard-daphne-")
        self.log_path = Path(self._logs.name) / "daphne.log"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise ProcessError("Daphne is not started")
        return self.process.pid

    def output(self) -> str:
        """The end of what the server wrote to stdout and stderr."""
        return read_tail(self.log_path)

    def start(self) -> None:
        """Start the server and wait until it serves pages."""
        if self.process is not None and self.process.poll() is None:
            raise ProcessError(f"Daphne is already running (pid {self.process.pid})")
        command = [sys.executable, "-c", _DAPHNE, "-b", "127.0.0.1", "-p", str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "tests.asgi:application"],
                cwd=REPO,
                env=project_env(self.db_path, self.redis_url),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until_ready(self.process, self._serves, what="Daphne", output=self.output)

    def stop(self) -> None:
        """Terminate the server (killed after ``STOP_TIMEOUT``); a no-op if it is not running."""
        if self.process is not None:
            stop_process(self.process)

    def _serves(self) -> bool:
        try:
            status, body = http_get(self.url + "/toppings/", timeout=5)
        except OSError:  # not listening yet
            return False
        if status != 200:
            # The app is up and answering: a wrong status will not right itself by waiting.
            raise ProcessError(
                f"GET /toppings/ answered {status} (is the database migrated?):\n"
                f"{body[:OUTPUT_TAIL]}\nDaphne's output:\n{self.output()}"
            )
        return True

    def __enter__(self) -> DaphneServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        self._logs.cleanup()
