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

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from types import TracebackType
from typing import Self

from signal_dashboard.integrations.testing.processes import (
    OUTPUT_TAIL,
    SESSION_COOKIE_NAME,
    ProcessError,
    free_port,
    http_get,
    read_tail,
    stop_process,
    wait_until_ready,
)

REPO = Path(__file__).resolve().parent.parent
SETTINGS_MODULE = "tests.settings_redis"

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


def run_python(code: str, timeout: float = 60) -> str:
    """Run ``code`` (dedented) in a fresh interpreter from the repository root, with nothing
    set up: what it prints, once it exited 0."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


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


class ChildProcess:
    """A process of the test project (tests.settings_redis) that a test starts and stops:
    its output goes to a log file (a pipe nobody reads would fill and block it)."""

    name = "child"

    def __init__(self, db_path: Path | str, redis_url: str) -> None:
        self.db_path = Path(db_path)
        self.redis_url = redis_url
        self.process: subprocess.Popen[bytes] | None = None
        self._logs = tempfile.TemporaryDirectory(prefix=f"signal-dashboard-{self.name}-")
        self.log_path = Path(self._logs.name) / f"{self.name}.log"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise ProcessError(f"{self.name} is not started")
        return self.process.pid

    def output(self) -> str:
        """The end of what the process wrote to stdout and stderr."""
        return read_tail(self.log_path)

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        """Start the process and wait until it is ready."""
        if self.process is not None and self.process.poll() is None:
            raise ProcessError(f"{self.name} is already running (pid {self.process.pid})")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=REPO,
                env=project_env(self.db_path, self.redis_url),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until_ready(self.process, self.ready, what=self.name, output=self.output)

    def stop(self) -> None:
        """Terminate the process (killed after ``STOP_TIMEOUT``); a no-op if it is not running."""
        if self.process is not None:
            stop_process(self.process)

    def __enter__(self) -> Self:
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


class DaphneServer(ChildProcess):
    """``tests.asgi:application`` (or another ``application`` of tests/asgi.py) served by
    Daphne in a child process, on a free port.

    The database at ``db_path`` must be migrated first (``migrate()``): readiness is a 200
    from ``/toppings/``, which lists the toppings.
    """

    name = "daphne"

    def __init__(
        self, db_path: Path | str, redis_url: str, application: str = "application"
    ) -> None:
        super().__init__(db_path, redis_url)
        self.application = f"tests.asgi:{application}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        host, port = "127.0.0.1", str(self.port)
        return [sys.executable, "-c", _DAPHNE, "-b", host, "-p", port, self.application]

    def ready(self) -> bool:
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


class CeleryWorker(ChildProcess):
    """A Celery worker for ``tests.celery_app`` in a child process (one task at a time), its
    broker the tests' Redis; stopped with a warm shutdown, so that it publishes what it traced."""

    name = "celery"

    def command(self) -> list[str]:
        return [
            *(sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker"),
            *("--pool", "solo", "--loglevel", "INFO"),
            *("--without-heartbeat", "--without-mingle", "--without-gossip"),
        ]

    def ready(self) -> bool:
        return " ready." in self.output()
