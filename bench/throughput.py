"""Request throughput of the demo's heaviest view under Daphne, with tracing off, on, and watched.

    python bench/throughput.py [--duration 15] [--connections 8] [--rounds 2] [--no-redis]
                               [--no-waits]

``POST /traffic/bake-batch/`` (a new pizza, three orders saved and baked, ``pizza_done`` sent
robustly) is served by Daphne in a child process, with DEBUG off, and loaded by wrk for
``--duration`` seconds, after a warm-up, in each configuration:

- tracing off;
- tracing on, no dashboard open;
- tracing on, 5 dashboard sockets connected and reading (from this process);
- the last two again with the Redis transport, through a redis-server started here (skipped
  with ``--no-redis``, or when redis-server is not installed).

Every configuration gets a fresh server on one shared SQLite file. Rounds visit the
configurations in turn, so that machine noise hits them alike; the table shows each one's best
round (highest requests/s) and its ratio to tracing off's best ("ratio"), and the median over
the rounds of its ratio to tracing off in the same round ("median"), which one lucky round
cannot move. The target is at least 0.9 times tracing off's requests/s with dashboards open,
read on the best rounds. "cpu ms" is the server process's CPU time (user and system, every
thread) per request served, the median over the rounds: with the GIL, one Daphne process
serves about as many requests a second as one core allows, so this is what a request costs
the server, tracing's threads included. Failed requests are counted by kind (wrk's socket
errors and timeouts, "status" for answers other than 2xx/3xx, and "locked" for those the
server put down to SQLite's "database is locked"), and any run with some is listed as a
problem.

"rows/dashboard" is how many event rows each dashboard received during the measurement, and
"rows/req" that divided by the requests served: the events one request sends (10) if the
dashboards kept up, a little more when requests in flight at the end of a measurement finish
after it. Dashboards told of dropped rows, or closed on, are listed as problems.

The demo's receivers stand in for slow services by sleeping: the menu board 20-200 ms inside
the view's transaction, which holds SQLite's only write lock that long, so those sleeps set the
pace (and most of its noise). ``--no-waits`` makes them return at once, so that the server's
own work, tracing and dashboards included, does. Either way requests queue for SQLite's write
lock, whose busy handler retries with growing sleeps: with more than 2 connections p95 and p99
mostly measure that queue.

Needs wrk, and the test extras (the helpers of signal_dashboard/testing/).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import django  # noqa: E402
from websockets.asyncio.client import ClientConnection  # noqa: E402

from signal_dashboard.integrations.testing.processes import (  # noqa: E402
    OUTPUT_TAIL,
    ProcessError,
    free_port,
    http_get,
    open_dashboard_socket,
    read_tail,
    stop_process,
    wait_until_ready,
)

SETTINGS_MODULE = "bench.demo_settings"
TARGET_PATH = "/traffic/bake-batch/"
TARGET_RATIO = 0.9
DASHBOARDS = 5
# Seconds of load before each measurement: first requests fill caches, and the dashboards'
# first tables.
WARM_UP = 3
# Rows reach the dashboards after their requests' responses, later still when the server lags:
# they are counted once no row came for QUIET seconds (giving up after SETTLE_LIMIT).
QUIET = 1.0
SETTLE_LIMIT = 30.0
POLL_INTERVAL = 0.1
# Generous: a slow response is latency to measure, not an error.
WRK_TIMEOUT = "30s"
SOCKET_TIMEOUT = 10.0
# The dashboard's staff user.
USERNAME = "bench"
PASSWORD = "bench"

# Django accepts any 32-character alphanumeric token as long as cookie and header agree, and
# checks no Referer on plain HTTP.
CSRF_TOKEN = "benchbenchbenchbenchbenchbench00"
WRK_SCRIPT = f"""
wrk.method = "POST"
wrk.body = ""
wrk.headers["Cookie"] = "csrftoken={CSRF_TOKEN}"
wrk.headers["X-CSRFToken"] = "{CSRF_TOKEN}"

-- wrk's own report has no p95: print what the bench needs, one "BENCH name value" a line.
function done(summary, latency, requests)
  io.write(string.format("BENCH requests %d\\n", summary.requests))
  io.write(string.format("BENCH duration_us %d\\n", summary.duration))
  for _, name in ipairs({{"connect", "read", "write", "status", "timeout"}}) do
    io.write(string.format("BENCH %s %d\\n", name, summary.errors[name]))
  end
  for _, p in ipairs({{50, 95, 99}}) do
    io.write(string.format("BENCH p%d_us %d\\n", p, latency:percentile(p)))
  end
end
"""
_WRK_LINE = re.compile(r"^BENCH (\w+) (\d+)$", re.MULTILINE)

# The demo's receivers stand in for slow services by sleeping (the menu board 20-200 ms, inside
# the view's transaction, so SQLite's write lock is held that long; the announcement 5 ms).
# With --no-waits they return at once, and the server's own work sets the pace.
_DAPHNE_NO_WAITS = """
import django

django.setup()

from daphne.cli import CommandLineInterface

from bench.demo_waits import skip_demo_waits

skip_demo_waits()
CommandLineInterface.entrypoint()
"""

_SESSION = f"""
import django

django.setup()

from django.contrib.auth import get_user_model
from django.test import Client

get_user_model().objects.create_user({USERNAME!r}, password={PASSWORD!r}, is_staff=True)
client = Client()
if not client.login(username={USERNAME!r}, password={PASSWORD!r}):
    raise SystemExit("cannot log in")
print(client.cookies["sessionid"].value)
"""

# What the dashboard page would swap in: one table row per event, and the drop counter.
ROW_MARKER = '<tr class="sd-row'
_DROPPED = re.compile(r'<span id="sd-dropped">(\d+)</span>')


@dataclass(frozen=True)
class Configuration:
    name: str
    tracing: bool
    redis: bool = False
    dashboards: int = 0


@dataclass
class Run:
    """One configuration's measurement, from wrk's report and the dashboards' counts."""

    requests: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    cpu_ms: float  # the server process's CPU time (user and system) per request
    # Failed requests by kind: wrk's socket errors and timeouts, and non-2xx/3xx answers.
    errors: dict[str, int]
    # "database is locked" in the server's log, warm-up included: the usual cause of a 500 here.
    locked: int
    rows: list[int] = field(default_factory=list)  # per dashboard, during the measurement
    dropped: int = 0  # the most any dashboard was told it missed
    closed: list[str] = field(default_factory=list)  # dashboards that were closed on
    server_error: str = ""  # the server's last traceback, if it logged one

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def failed(self) -> int:
        return sum(self.errors.values())


def child_env(db_path: Path, tracing: bool, redis_url: str | None) -> dict[str, str]:
    """The environment of every child: this checkout first on the path, bench settings."""
    python_path = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(python_path),
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        "DEMO_DATABASE": str(db_path),
        "BENCH_TRACING": "on" if tracing else "off",
    }
    env.pop("BENCH_REDIS_URL", None)
    if redis_url:
        env["BENCH_REDIS_URL"] = redis_url
    return env


def prepare_database(db_path: Path) -> str:
    """Migrate a new database (the demo's toppings come with it); return a staff session key."""
    env = child_env(db_path, tracing=False, redis_url=None)
    for command in (["-m", "django", "migrate", "--noinput"], ["-c", _SESSION]):
        result = subprocess.run(
            [sys.executable, *command],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise ProcessError(f"{' '.join(command)[:40]} failed:\n{result.stderr}")
    return result.stdout.split()[-1]


@contextmanager
def daphne(env: dict[str, str], log_path: Path, no_waits: bool) -> Iterator[tuple[str, int]]:
    """The demo served by Daphne on a free port until the block ends; yields its URL and
    process id."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    start = ["-c", _DAPHNE_NO_WAITS] if no_waits else ["-m", "daphne"]
    command = [sys.executable, *start, "-b", "127.0.0.1", "-p", str(port)]
    # A file, not a pipe: nobody reads a pipe while the server runs.
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "signal_dashboard.demo.asgi:application"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def serves() -> bool:
        try:
            status, _ = http_get(url + "/", timeout=5)
        except OSError:  # not listening yet
            return False
        if status != 200:
            raise ProcessError(f"GET / answered {status}:\n{read_tail(log_path)}")
        return True

    wait_until_ready(process, serves, what="Daphne", output=lambda: read_tail(log_path))
    try:
        yield url, process.pid
    finally:
        stop_process(process)


class Dashboards:
    """Dashboard sockets read on an event loop of their own, counting the rows each receives."""

    def __init__(self, count: int, url: str, session_key: str) -> None:
        self.count = count
        self.url = url
        self.session_key = session_key
        self.rows = [0] * count
        self.dropped = [0] * count
        self.closed: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._sockets: list[ClientConnection] = []
        self._readers: list[asyncio.Task[None]] = []

    def __enter__(self) -> Dashboards:
        self._thread.start()
        try:
            self._call(self._open())
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop()

    def settled_rows(self) -> list[int]:
        """The rows each dashboard received, once they stopped coming."""
        deadline = time.monotonic() + SETTLE_LIMIT
        rows, quiet_since = list(self.rows), time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < QUIET:
            time.sleep(POLL_INTERVAL)
            if self.rows != rows:
                rows, quiet_since = list(self.rows), time.monotonic()
        return rows

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(SOCKET_TIMEOUT)

    async def _open(self) -> None:
        ws_url = self.url.replace("http://", "ws://", 1)
        for index in range(self.count):
            socket = await open_dashboard_socket(ws_url, self.session_key, self.url)
            self._sockets.append(socket)
            self._readers.append(asyncio.create_task(self._read(index, socket)))

    async def _read(self, index: int, socket: ClientConnection) -> None:
        try:
            async for message in socket:
                text = message if isinstance(message, str) else message.decode()
                self.rows[index] += text.count(ROW_MARKER)
                for dropped in _DROPPED.findall(text):
                    self.dropped[index] = int(dropped)
        except Exception as error:  # the connection broke: the table reports it
            self.closed.append(f"dashboard {index + 1}: {error}")
            return
        if self._sockets:  # still wanted: the server closed it
            self.closed.append(f"dashboard {index + 1}: closed with code {socket.close_code}")

    async def _close(self) -> None:
        sockets, self._sockets = self._sockets, []
        for socket in sockets:
            await socket.close()
        await asyncio.gather(*self._readers, return_exceptions=True)

    def _stop(self) -> None:
        try:
            self._call(self._close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(SOCKET_TIMEOUT)
            self._loop.close()


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system, all threads) a process has used so far (Linux's /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # utime and stime, the 14th and 15th fields, counted from the one after the name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(url: str, script: Path, seconds: int, connections: int) -> dict[str, int]:
    """Load ``url``'s target view with wrk; the figures its script's done() printed."""
    result = subprocess.run(
        [
            "wrk",
            "--threads",
            "1",
            "--connections",
            str(connections),
            "--duration",
            f"{seconds}s",
            "--timeout",
            WRK_TIMEOUT,
            "--script",
            str(script),
            url + TARGET_PATH,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    figures = {name: int(value) for name, value in _WRK_LINE.findall(result.stdout)}
    if result.returncode != 0 or "requests" not in figures:
        raise ProcessError(f"wrk failed:\n{result.stdout}\n{result.stderr}")
    return figures


def measure(
    config: Configuration,
    *,
    db_path: Path,
    redis_url: str | None,
    session_key: str,
    script: Path,
    log_path: Path,
    duration: int,
    connections: int,
    no_waits: bool,
) -> Run:
    """Start a server in ``config``, open its dashboards, warm up, then load and measure."""
    env = child_env(db_path, config.tracing, redis_url if config.redis else None)
    with ExitStack() as stack:
        url, pid = stack.enter_context(daphne(env, log_path, no_waits))
        dashboards = stack.enter_context(Dashboards(config.dashboards, url, session_key))
        run_wrk(url, script, WARM_UP, connections)
        rows_before = dashboards.settled_rows()
        cpu_before = cpu_seconds(pid)
        figures = run_wrk(url, script, duration, connections)
        cpu = cpu_seconds(pid) - cpu_before
        rows_after = dashboards.settled_rows()
        rows = [after - before for after, before in zip(rows_after, rows_before, strict=True)]
        closed = list(dashboards.closed)
        dropped = max(dashboards.dropped, default=0)
    log = log_path.read_text(errors="replace")
    last_traceback = log.rfind("Traceback")
    return Run(
        requests=figures["requests"],
        seconds=figures["duration_us"] / 1e6,
        cpu_ms=cpu * 1000 / max(1, figures["requests"]),
        p50_ms=figures["p50_us"] / 1000,
        p95_ms=figures["p95_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        errors={kind: figures[kind] for kind in ("connect", "read", "write", "status", "timeout")},
        locked=log.count("database is locked"),
        rows=rows,
        dropped=dropped,
        closed=closed,
        server_error=log[last_traceback:][:OUTPUT_TAIL] if last_traceback >= 0 else "",
    )


def describe_errors(run: Run) -> str:
    kinds = [f"{count} {kind}" for kind, count in run.errors.items() if count]
    if run.locked:
        kinds.append(f"{run.locked} locked")
    return ", ".join(kinds) if kinds else "0"


def describe_rows(run: Run) -> str:
    if not run.rows:
        return "-"
    low, high = min(run.rows), max(run.rows)
    return f"{low}" if low == high else f"{low}-{high}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds of load per run")
    parser.add_argument("--connections", type=int, default=8, help="wrk's open connections")
    parser.add_argument("--rounds", type=int, default=2, help="runs per configuration")
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis transport")
    parser.add_argument(
        "--no-waits",
        action="store_true",
        help="the demo receivers' stand-in sleeps return at once",
    )
    args = parser.parse_args()

    configs = [
        Configuration("tracing off", tracing=False),
        Configuration("tracing on", tracing=True),
        Configuration(f"on, {DASHBOARDS} dashboards", tracing=True, dashboards=DASHBOARDS),
    ]
    with_redis = not args.no_redis and shutil.which("redis-server") is not None
    if with_redis:
        configs += [
            Configuration("redis, on", tracing=True, redis=True),
            Configuration(
                f"redis, {DASHBOARDS} dashboards", tracing=True, redis=True, dashboards=DASHBOARDS
            ),
        ]
    elif not args.no_redis:
        print("redis-server is not installed: the Redis transport is skipped")

    print(
        f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"POST {TARGET_PATH} for {args.duration} s after {WARM_UP} s of warm-up, "
        f"{args.connections} connections, best of {args.rounds} rounds"
        + (", receivers' sleeps skipped (--no-waits)" if args.no_waits else "")
    )
    runs: dict[Configuration, list[Run]] = {config: [] for config in configs}
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="signal-bench-")))
        redis_url = None
        if with_redis:
            from signal_dashboard.integrations.testing.redis_server import RedisServer

            redis_url = stack.enter_context(RedisServer()).url
        db_path = work / "demo.sqlite3"
        session_key = prepare_database(db_path)
        script = work / "bake_batch.lua"
        script.write_text(WRK_SCRIPT)
        for round_number in range(1, args.rounds + 1):
            for config in configs:
                run = measure(
                    config,
                    db_path=db_path,
                    redis_url=redis_url,
                    session_key=session_key,
                    script=script,
                    log_path=work / "daphne.log",
                    duration=args.duration,
                    connections=args.connections,
                    no_waits=args.no_waits,
                )
                runs[config].append(run)
                print(
                    f"  round {round_number}, {config.name}: {run.per_second:.1f} req/s, "
                    f"{run.cpu_ms:.1f} ms of server CPU per request, "
                    f"errors {describe_errors(run)}, rows/dashboard {describe_rows(run)}",
                    flush=True,
                )
    print_table(configs, runs)


def print_table(configs: list[Configuration], runs: dict[Configuration, list[Run]]) -> None:
    best = {config: max(runs[config], key=lambda run: run.per_second) for config in configs}
    baseline = best[configs[0]].per_second
    header = (
        f"{'configuration':<22}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'ratio':>7}{'median':>8}{'cpu ms':>8}  {'errors':<10}{'rows/dashboard':>15}"
        f"{'rows/req':>9}"
    )
    print(header)
    print("-" * len(header))
    missed = []
    for config in configs:
        run = best[config]
        ratio = run.per_second / baseline
        # Each round's ratio to tracing off in the same round, whose noise both share; a lucky
        # round moves the best-of ratio, not this one.
        median = statistics.median(
            mine.per_second / off.per_second
            for mine, off in zip(runs[config], runs[configs[0]], strict=True)
        )
        cpu_ms = statistics.median(mine.cpu_ms for mine in runs[config])
        rows_per_request = f"{min(run.rows) / run.requests:.1f}" if run.rows else "-"
        print(
            f"{config.name:<22}{run.per_second:>8.1f}{run.p50_ms:>9.1f}{run.p95_ms:>9.1f}"
            f"{run.p99_ms:>9.1f}{ratio:>7.2f}{median:>8.2f}{cpu_ms:>8.1f}  "
            f"{describe_errors(run):<10}{describe_rows(run):>15}{rows_per_request:>9}"
        )
        if config.dashboards and ratio < TARGET_RATIO:
            missed.append(config.name)
    # Every round's, not only the best's: a failing round must not hide behind a good one.
    problems = [
        f"{config.name}, round {number}: {problem}"
        for config in configs
        for number, run in enumerate(runs[config], start=1)
        for problem in run_problems(config, run)
    ]
    print(f"target: with dashboards open, >= {TARGET_RATIO} x tracing off's requests/s")
    verdict = "target met" if not missed else f"target missed: {', '.join(missed)}"
    print(verdict + (" (but see the problems below)" if problems else ""))
    for problem in problems:
        print(f"problem: {problem}")


def run_problems(config: Configuration, run: Run) -> list[str]:
    """What makes ``run``'s figures suspect: failed requests, dashboards that missed rows."""
    problems = []
    if run.failed or run.locked:
        problems.append(f"failed requests ({describe_errors(run)})")
    if config.dashboards and (not run.rows or min(run.rows) == 0):
        problems.append("a dashboard received no rows")
    if run.dropped:
        problems.append(f"dashboards were told {run.dropped} rows were dropped")
    problems += run.closed
    if run.server_error:
        problems.append(f"the server logged an error:\n{run.server_error}")
    return problems


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the servers are stopped on the way out
        sys.exit("interrupted")
