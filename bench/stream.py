"""Stream capacity: how many signal events a second one process can send to an open dashboard.

    python bench/stream.py [--seconds 5] [--rates 1000,2000,5000,10000,20000,50000]
                           [--transport both|memory|redis]

Daphne serves bench/stream_project.py in a child process; this process opens the dashboard's
WebSocket as a logged-in staff user and asks the server (``GET /produce/``) to send a custom
signal with two receivers at each rate in turn, for ``--seconds`` each, from a thread of the
server process. Per rate it prints:

- the rate the producer achieved, and its own send calls' p50/p99/max (the sending path must
  not wait for the socket: events it cannot hand on are dropped and counted instead);
- rows that reached the socket per second, rows lost (sent minus received) and the drops the
  dashboard reported (the two should agree);
- send->socket latency p50/p95/p99: the time this process received the row's message minus
  the send's wall-clock time, which rows show to the millisecond (so latencies read up to 1 ms
  high); both processes read the same clock;
- the server process's CPU use (2.0 is two cores busy).

A socket the server closes is reported with the exception the server logged, and the next
rate opens a new one, as a page would. Stepping stops once the producer cannot keep its pace.
It runs with the in-memory channel layer (events reach sockets of the same process) and with
the Redis transport (a ``redis-server`` started here on a free port; the server's publisher
thread sends through it).
Targets: at least 10,000 events/s produced without the sending path waiting on the socket, and
send->socket p95 under 200 ms at 1,000 events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import django  # noqa: E402
from websockets.asyncio.client import ClientConnection, connect  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.typing import Origin  # noqa: E402

from signal_dashboard.integrations.testing.processes import (  # noqa: E402
    free_port,
    http_get,
    read_tail,
    stop_process,
    wait_until_ready,
)
from signal_dashboard.integrations.testing.redis_server import RedisServer  # noqa: E402

PROJECT = "bench.stream_project"
SIGNAL_LABEL = f"{PROJECT}.order_placed"
RATES = (1000, 2000, 5000, 10000, 20000, 50000)
TARGET_RATE = 10000
TARGET_P95_MS = 200.0
LATENCY_RATE = 1000
# A step's producer below this share of its target rate is saturated: stepping stops there.
KEEPS_PACE = 0.95
# After the producer is done, rows still in flight get this long (seconds) after the last one
# arrived; the server pushes its status every second, so a lost batch is reported within it.
DRAIN_QUIET = 2.5
WARM_UP_SECONDS = 1.0

# Logs in the staff user that the dashboard's socket authenticates as; prints the session key.
_SETUP = """
import django

django.setup()

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

call_command("migrate", verbosity=0)
get_user_model().objects.create_user("bench", password="bench", is_staff=True)
client = Client()
assert client.login(username="bench", password="bench")
print(client.cookies["sessionid"].value)
"""

# Daphne's CLI imports the application before Django is set up; set it up first.
_DAPHNE = (
    "import django; django.setup(); from daphne.cli import CommandLineInterface; "
    "CommandLineInterface.entrypoint()"
)

_ROW = re.compile(
    r'<tr class="sd-row[^"]*" data-id="[^"]*" data-signal="([^"]*)".*?'
    r'<td class="sd-time">(\d\d):(\d\d):(\d\d)\.(\d{3})</td>',
    re.S,
)
_DROPPED = re.compile(r'<span id="sd-dropped">(\d+)</span>')
_ERROR = re.compile(r"^[\w.]+(?:Error|Exception): .*$", re.M)


def project_env(db_path: Path, redis_url: str | None) -> dict[str, str]:
    """The environment of a child running the bench project from this checkout."""
    python_path = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": PROJECT,
        "STREAM_BENCH_DB": str(db_path),
        "STREAM_BENCH_REDIS_URL": redis_url or "",
        "PYTHONPATH": os.pathsep.join(python_path),
    }


def set_up_database(db_path: Path) -> str:
    """Migrate the database and return the session key of a logged-in staff user."""
    result = subprocess.run(
        [sys.executable, "-c", _SETUP],
        cwd=REPO,
        env=project_env(db_path, None),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"cannot set up the bench database:\n{result.stderr}")
    return result.stdout.split()[-1]


class Server:
    """Daphne serving the bench project in a child process."""

    def __init__(self, db_path: Path, redis_url: str | None, log_dir: Path) -> None:
        self.env = project_env(db_path, redis_url)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"daphne-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def output(self) -> str:
        return read_tail(self.log_path)

    def last_error(self) -> str:
        """The last exception the server logged."""
        errors = _ERROR.findall(self.output())
        return errors[-1] if errors else "no exception logged"

    def __enter__(self) -> Server:
        command = [sys.executable, "-c", _DAPHNE, "-b", "127.0.0.1", "-p", str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, f"{PROJECT}:application"],
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until_ready(self.process, self._serves, what="Daphne", output=self.output)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.process is not None:
            stop_process(self.process)

    def _serves(self) -> bool:
        try:
            return http_get(self.url + "/ready/", timeout=5)[0] == 200
        except OSError:  # not listening yet
            return False

    def produce(self, rate: int, seconds: float) -> dict[str, Any]:
        status, body = http_get(
            f"{self.url}/produce/?rate={rate}&seconds={seconds}", timeout=seconds + 60
        )
        if status != 200:
            raise RuntimeError(f"/produce/ answered {status}:\n{body[:2000]}\n{self.output()}")
        return json.loads(body)


@dataclass
class Dashboard:
    """Reads the dashboard's socket: counts the producer's rows and times their arrival."""

    socket: ClientConnection
    rows: int = 0
    dropped: int = 0  # as the dashboard last showed it
    latencies_ms: list[float] = field(default_factory=list)
    last_row_at: float = 0.0
    closed: str = ""  # why the socket is closed, once it is
    reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, url: str, session_key: str) -> Dashboard:
        # No size limit: a batch of thousands of rows is one message of several megabytes.
        socket = await connect(
            url.replace("http://", "ws://") + "/ws/signals/",
            origin=Origin(url),
            additional_headers={"Cookie": f"sessionid={session_key}"},
            proxy=None,
            max_size=None,
        )
        dashboard = cls(socket)
        dashboard.reader = asyncio.create_task(dashboard.read())
        return dashboard

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        await self.socket.close()

    async def read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in self.socket:
                self._count(message, time.time())
        self.closed = f"socket closed by the server ({self.socket.close_code})"

    def _count(self, message: str | bytes, received: float) -> None:
        assert isinstance(message, str)
        # Rows show UTC wall-clock time of day: compare it with ours, modulo a day.
        time_of_day = received % 86400
        for signal, hours, minutes, secs, millis in _ROW.findall(message):
            if signal != SIGNAL_LABEL:
                continue  # the server's own request_started and the like
            sent = int(hours) * 3600 + int(minutes) * 60 + int(secs) + int(millis) / 1000
            self.latencies_ms.append((time_of_day - sent) % 86400 * 1000)
            self.rows += 1
            self.last_row_at = time.monotonic()
        dropped = _DROPPED.search(message)
        if dropped:
            self.dropped = int(dropped.group(1))


@dataclass
class Step:
    rate: int
    produced: dict[str, Any]
    received: int
    lost: int
    reported_dropped: int
    latencies_ms: list[float]
    closed: str

    @property
    def achieved(self) -> float:
        return self.produced["sent"] / self.produced["seconds"]

    @property
    def keeps_pace(self) -> bool:
        return self.achieved >= KEEPS_PACE * self.rate

    def latency(self, percent: int) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, len(ordered) * percent // 100)]


async def run_step(server: Server, dashboard: Dashboard, rate: int, seconds: float) -> Step:
    rows, dropped, seen = dashboard.rows, dashboard.dropped, len(dashboard.latencies_ms)
    produced = await asyncio.to_thread(server.produce, rate, seconds)
    dashboard.last_row_at = time.monotonic()
    while dashboard.rows - rows < produced["sent"] and not dashboard.closed:
        if time.monotonic() - dashboard.last_row_at > DRAIN_QUIET:
            break
        await asyncio.sleep(0.05)
    received = dashboard.rows - rows
    return Step(
        rate=rate,
        produced=produced,
        received=received,
        lost=produced["sent"] - received,
        reported_dropped=dashboard.dropped - dropped,
        latencies_ms=dashboard.latencies_ms[seen:],
        closed=f"{dashboard.closed}: {server.last_error()}" if dashboard.closed else "",
    )


async def run_transport(
    server: Server, session_key: str, rates: list[int], seconds: float
) -> list[Step]:
    dashboard = await Dashboard.open(server.url, session_key)
    try:
        await run_step(server, dashboard, LATENCY_RATE, WARM_UP_SECONDS)
        steps = []
        for rate in rates:
            if dashboard.closed:  # a page would reconnect: so does this one
                await dashboard.close()
                dashboard = await Dashboard.open(server.url, session_key)
            step = await run_step(server, dashboard, rate, seconds)
            print_step(step)
            steps.append(step)
            if not step.keeps_pace:
                print(f"  the producer no longer keeps its pace at {rate:,}/s: stopping")
                break
        return steps
    finally:
        await dashboard.close()


HEADER = (
    f"{'target/s':>9}{'sent/s':>9}{'recv/s':>9}{'lost':>8}{'dropped':>8}"
    f"{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}"
    f"{'send p50 us':>12}{'p99 us':>8}{'max ms':>8}{'cpu':>6}"
)


def print_step(step: Step) -> None:
    send_ns = step.produced["send_ns"]
    print(
        f"{step.rate:>9,}{step.achieved:>9,.0f}"
        f"{step.received / step.produced['seconds']:>9,.0f}{step.lost:>8,}"
        f"{step.reported_dropped:>8,}"
        f"{step.latency(50):>8.0f}{step.latency(95):>8.0f}{step.latency(99):>8.0f}"
        f"{send_ns['p50'] / 1e3:>12.1f}{send_ns['p99'] / 1e3:>8.1f}{send_ns['max'] / 1e6:>8.1f}"
        f"{step.produced['cpu']:>6.2f}"
    )
    if step.closed:
        print(f"  {step.closed}")


def verdicts(steps: list[Step]) -> list[str]:
    """The targets, each with whether it held."""
    lines = []
    complete = [step.achieved for step in steps if step.lost == 0 and step.keeps_pace]
    lines.append(
        "highest rate with every event delivered: "
        + (f"{max(complete):,.0f}/s" if complete else "none")
    )
    at_target = next((step for step in steps if step.rate == TARGET_RATE), None)
    if at_target is None:
        lines.append(f">= {TARGET_RATE:,}/s produced: not measured")
    else:
        # Not blocked: the producer keeps its pace, and what the socket misses is counted.
        held = at_target.keeps_pace and at_target.lost == at_target.reported_dropped
        lines.append(
            f">= {TARGET_RATE:,}/s produced, sends not blocked, drops counted: "
            f"{at_target.achieved:,.0f}/s, send p99 "
            f"{at_target.produced['send_ns']['p99'] / 1e3:.1f} us, "
            f"{at_target.lost:,} lost / {at_target.reported_dropped:,} reported "
            + ("ok" if held else "MISSED")
        )
    at_latency = next((step for step in steps if step.rate == LATENCY_RATE), None)
    if at_latency is None:
        lines.append(f"p95 at {LATENCY_RATE:,}/s: not measured")
    else:
        p95 = at_latency.latency(95)
        lines.append(
            f"send->socket p95 at {LATENCY_RATE:,}/s < {TARGET_P95_MS:.0f} ms: {p95:.0f} ms "
            + ("ok" if p95 < TARGET_P95_MS else "MISSED")
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="how long each rate runs")
    parser.add_argument(
        "--rates",
        default=",".join(map(str, RATES)),
        help="comma-separated target rates, events/s",
    )
    parser.add_argument("--transport", choices=("both", "memory", "redis"), default="both")
    args = parser.parse_args()
    rates = [int(rate) for rate in args.rates.split(",")]
    transports = ("memory", "redis") if args.transport == "both" else (args.transport,)

    print(
        f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"{args.seconds:g} s per rate, one Daphne process, {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory(prefix="signal-dashboard-stream-") as tmp:
        work = Path(tmp)
        db_path = work / "bench.sqlite3"
        session_key = set_up_database(db_path)
        for transport in transports:
            print()
            if transport == "memory":
                print("In-memory channel layer")
                print(HEADER)
                with Server(db_path, None, work) as server:
                    steps = asyncio.run(run_transport(server, session_key, rates, args.seconds))
            else:
                with RedisServer() as redis_server:
                    print(f"Redis transport ({redis_server.url})")
                    print(HEADER)
                    with Server(db_path, redis_server.url, work) as server:
                        steps = asyncio.run(run_transport(server, session_key, rates, args.seconds))
            for line in verdicts(steps):
                print("  " + line)


if __name__ == "__main__":
    main()
