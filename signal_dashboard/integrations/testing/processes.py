"""Child processes for tests and benchmarks: free ports, waiting for a server, stopping it.

Used by this project's tests and ``bench/`` (install the ``test`` extra for ``websockets``).
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

# Seconds a server may take to come up, and to go once terminated.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# How often a starting server is polled (seconds).
POLL_INTERVAL = 0.05
# How much of a child's log a failure shows (characters).
OUTPUT_TAIL = 4000
# The dashboard's session cookie and socket path, as the test and demo projects set them.
SESSION_COOKIE_NAME = "sessionid"
DASHBOARD_SOCKET_PATH = "/ws/signals/"


class ProcessError(RuntimeError):
    """A child process did not come up, or exited when it should not have."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
