"""Several processes on one dashboard through a real redis-server: servers, commands, failures."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from websockets.exceptions import ConnectionClosed

from signal_dashboard.backends import backend
from signal_dashboard.backends.redis import connection, history
from signal_dashboard.backends.redis import publisher as publishing
from signal_dashboard.backends.redis.connection import SOURCE, STATS_KEY_PREFIX
from signal_dashboard.capture import send
from signal_dashboard.capture.histogram import Histogram, SealedHistogram
from signal_dashboard.conf import DEFAULTS
from signal_dashboard.integrations.testing.processes import http_get, open_dashboard_socket
from signal_dashboard.integrations.testing.redis_server import RedisServer
from signal_dashboard.record.recorder import Recorder, recorder
from signal_dashboard.record.stats.merge import MergedStore
from signal_dashboard.record.stats.store import LatencyStore
from signal_dashboard.tracing import capture
from signal_dashboard.web import consumers, fragments
from tests.processes import (
    REPO,
    DaphneServer,
    migrate,
    project_env,
    run_command,
    session_cookie,
)
from tests.urls import on_every_order, pizza_ordered

pytestmark = pytest.mark.redis

# How long an event may take from any process to an open dashboard (seconds); the publisher
# backs off up to 5 s while Redis is down.
EVENT_TIMEOUT = 15.0
TOPPING_RECEIVER = "tests.asgi.topping_saved"
# A command that connects a receiver to the test project's custom signal and sends it.
SEND_CUSTOM_SIGNAL = (
    "from tests.urls import pizza_ordered; "
    "pizza_ordered.connect(lambda sender, **kwargs: 'noted', weak=False); "
    "pizza_ordered.send(sender='shell', name='calzone')"
)
# A send's row (a signal-hygiene finding's has the class sd-finding).
ROW = re.compile(r'<tr class="sd-row(?![^"]*sd-finding).*?</tr>', re.DOTALL)


@pytest.fixture
def servers(project_db: Path, redis_server: RedisServer) -> Iterator[list[DaphneServer]]:
    with (
        DaphneServer(project_db, redis_server.url) as first,
        DaphneServer(project_db, redis_server.url) as second,
    ):
        yield [first, second]


@pytest.fixture
def session_key(project_db: Path, redis_server: RedisServer) -> str:
    return session_cookie(project_db, redis_server.url, "staff", "password")


def rows(message: str) -> list[dict[str, str]]:
    """The stream rows in a pushed fragment: signal, sender, process and what caused them."""
    found = []
    for html in ROW.findall(message):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", html, re.DOTALL)
        process = re.search(r'<span class="sd-muted sd-process">([^<]+)</span>', html)
        found.append(
            {
                "signal": re.search(r'data-signal="([^"]+)"', html).group(1),  # type: ignore[union-attr]
                # (<wbr> marks where a name may wrap; the process follows in a <span>.)
                "caused_by": re.sub(r"<[^>]+>.*", "", cells[-1].replace("<wbr>", "")).strip(),
                "process": process.group(1) if process else "",
                "detail": re.search(r'hx-get="([^"]+)"', html).group(1),  # type: ignore[union-attr]
            }
        )
    return found


async def collect(socket: Any, until: Any, timeout: float = EVENT_TIMEOUT) -> list[dict[str, str]]:
    """Rows pushed to ``socket`` until ``until(rows)`` holds."""
    seen: list[dict[str, str]] = []
    async with asyncio.timeout(timeout):
        while not until(seen):
            seen += rows(str(await socket.recv()))
    return seen


def test_one_dashboard_shows_two_servers_and_a_command(
    servers: list[DaphneServer],
    project_db: Path,
    redis_server: RedisServer,
    session_key: str,
) -> None:
    first, second = servers

    def all_three(seen: list[dict[str, str]]) -> bool:
        return {row["process"] for row in seen if row["caused_by"] in origins} >= processes

    origins = {"GET /toppings/save/", "command shell"}
    processes = {f"{host}:{first.pid}", f"{host}:{second.pid}"} if (host := _host()) else set()

    async def watch() -> list[dict[str, str]]:
        socket = await open_dashboard_socket(first.ws_url, session_key, first.url)
        try:
            for index, server in enumerate(servers):
                url = f"{server.url}/toppings/save/?name=server{index}"
                status, _ = await asyncio.to_thread(http_get, url)
                assert status == 200
            command = await asyncio.to_thread(
                run_command, ["shell", "-c", SEND_CUSTOM_SIGNAL], project_db, redis_server.url
            )
            assert command.returncode == 0, command.stderr
            return await collect(
                socket,
                lambda seen: (
                    all_three(seen)
                    and any(row["signal"] == "tests.urls.pizza_ordered" for row in seen)
                ),
            )
        finally:
            await socket.close()

    seen = asyncio.run(watch())
    saves = [row for row in seen if row["signal"] == "django.db.models.signals.post_save"]
    assert {row["process"] for row in saves} == processes
    assert {row["caused_by"] for row in saves} == {"GET /toppings/save/"}
    [custom] = [row for row in seen if row["signal"] == "tests.urls.pizza_ordered"]
    assert custom["caused_by"] == "command shell"
    assert custom["process"] not in processes
    # A dashboard opened now starts from every process's recent events.
    status, page = _get_with_session(first.url + "/signals/", session_key)
    assert status == 200
    history = rows(page)
    assert {row["process"] for row in history} >= processes | {custom["process"]}
    assert 'data-signal="tests.urls.pizza_ordered"' in page
    # The command's send, detailed by a server that never had it: from Redis.
    status, detail = _get_with_session(first.url + custom["detail"], session_key)
    assert status == 200
    assert "command shell" in detail
    assert "&quot;noted&quot;" in detail  # what the receiver returned


def test_migrate_in_its_own_process_shows_on_the_dashboard(
    servers: list[DaphneServer],
    project_db: Path,
    redis_server: RedisServer,
    session_key: str,
) -> None:
    first = servers[0]

    async def watch() -> list[dict[str, str]]:
        socket = await open_dashboard_socket(first.ws_url, session_key, first.url)
        try:
            result = await asyncio.to_thread(migrate, project_db, redis_server.url)
            assert result.returncode == 0
            return await collect(
                socket,
                lambda seen: (
                    {"pre_migrate", "post_migrate"}
                    <= {row["signal"].rpartition(".")[2] for row in seen}
                ),
            )
        finally:
            await socket.close()

    seen = asyncio.run(watch())
    migrations = [row for row in seen if row["signal"].endswith("_migrate")]
    assert {row["caused_by"] for row in migrations} == {"command migrate"}
    assert len({row["process"] for row in migrations}) == 1
    assert migrations[0]["process"] not in {f"{_host()}:{server.pid}" for server in servers}


def test_statistics_merge_across_processes(
    servers: list[DaphneServer],
    project_db: Path,
    redis_server: RedisServer,
    session_key: str,
) -> None:
    first, second = servers
    for server, count in ((first, 3), (second, 2)):
        for index in range(count):
            assert http_get(f"{server.url}/toppings/save/?name=t{server.pid}-{index}")[0] == 200
    own = _published_histograms(redis_server.url, {first.pid: 3, second.pid: 2})
    expected = Histogram.merged(own.values())

    status, body = _get_with_session(first.url + "/signals/stats.json?span=all", session_key)
    assert status == 200
    [row] = [row for row in json.loads(body)["receivers"] if row["name"] == TOPPING_RECEIVER]
    merged = Histogram.from_dict(row["histogram"])
    # The serving process adds its own fresh figures: the same calls, so the same histogram.
    assert merged == expected
    assert row["count"] == 5
    assert row["p50_ns"] == expected.percentile(50)


def test_a_dashboard_on_an_idle_server_follows_the_others_statistics_and_rate(
    servers: list[DaphneServer], session_key: str
) -> None:
    first, second = servers

    async def watch() -> list[str]:
        socket = await open_dashboard_socket(first.ws_url, session_key, first.url)
        try:
            for index in range(2):
                url = f"{second.url}/toppings/save/?name=elsewhere{index}"
                assert (await asyncio.to_thread(http_get, url))[0] == 200
            async with asyncio.timeout(EVENT_TIMEOUT):
                cells: list[str] = []
                while cells[1:2] != ["2"]:  # the receiver's calls: both, once they are merged
                    cells = _latency_cells(str(await socket.recv()), TOPPING_RECEIVER) or cells
                # With no more events from anywhere, the rate falls back to nothing.
                rate = ""
                while rate != "0.0":
                    found = re.search(
                        r'<span id="sd-rate">([^<]*)</span>', str(await socket.recv())
                    )
                    rate = found.group(1) if found else rate
            return cells
        finally:
            await socket.close()

    assert asyncio.run(watch())[:2] == [TOPPING_RECEIVER, "2"]


def _latency_cells(message: str, name: str) -> list[str]:
    """The cells of the latency table's row of ``name`` in a pushed fragment, as text."""
    row = re.search(
        rf'<tr class="sd-lat-row[^"]*" data-name="{re.escape(name)}".*?</tr>', message, re.DOTALL
    )
    if row is None:
        return []
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(0), re.DOTALL)
    # A <wbr> (where a label may wrap) is no space in the text a person reads.
    text = [re.sub(r"<[^>]+>", " ", cell.replace("<wbr>", "")) for cell in cells]
    return [" ".join(cell.split()) for cell in text]


def test_statistics_read_from_redis_are_other_processes_only(
    redis_server: RedisServer, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "REDIS_URL": redis_server.url}
    monkeypatch.setattr(history.MergedCache, "store", None)
    other = _store_of_another_process()
    with redis.Redis.from_url(redis_server.url) as client:
        # What this process wrote earlier is not read back: its own figures are fresher.
        client.set(STATS_KEY_PREFIX + SOURCE, "not even JSON")
        assert backend().latency_store() is recorder.latency
        client.set(STATS_KEY_PREFIX + "otherhost:1", json.dumps(other.snapshot("otherhost:1")))
    monkeypatch.setattr(history.MergedCache, "read_at", 0.0)
    merged = backend().latency_store()
    assert isinstance(merged, MergedStore)
    assert merged.sources == ["otherhost:1", SOURCE]
    label = "tests.test_transport._noted"
    own = recorder.latency.receiver_histogram(label).count
    assert merged.receiver_histogram(label).count == own + 1


def test_statistics_that_cannot_be_read_are_skipped_and_the_rest_merged(
    redis_server: RedisServer,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    admin_client: Client,
) -> None:
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "REDIS_URL": redis_server.url}
    for name in ("store", "read_at", "ttl"):  # put back after the test
        monkeypatch.setattr(history.MergedCache, name, getattr(history.MergedCache, name))
    monkeypatch.setattr(history.MergedCache, "store", None)
    monkeypatch.setattr(history, "MERGED_STATS_TTL", 3600.0)  # the pages read the same merge
    monkeypatch.setattr(history.MergedCache, "unreadable", 0)
    other = _store_of_another_process()
    older = {**other.snapshot("otherhost:3"), "format": 1}
    keys = [STATS_KEY_PREFIX + name for name in ("otherhost:1", "otherhost:2", "otherhost:3")]
    with redis.Redis.from_url(redis_server.url) as client:
        client.set(keys[0], json.dumps(other.snapshot("otherhost:1")))
        client.set(keys[1], "not even JSON")
        client.set(keys[2], json.dumps(older))
        # A version writing another format keeps its statistics under another prefix.
        client.set("signal_dashboard:stats:otherhost:4", json.dumps(older))
        try:
            with caplog.at_level("WARNING", logger="signal_dashboard"):
                merged = backend().latency_store()
        finally:
            client.delete(*keys, "signal_dashboard:stats:otherhost:4")
    assert isinstance(merged, MergedStore)
    assert merged.sources == ["otherhost:1", SOURCE]
    label = "tests.test_transport._noted"
    assert merged.receiver_histogram(label).count == (
        recorder.latency.receiver_histogram(label).count + 1
    )
    assert backend().status()["up"]
    assert history.MergedCache.unreadable == 2
    assert sorted(merged.unreadable) == [
        "The statistics of 'otherhost:3' are in format 1; this version reads format 2.",
        f"{keys[1]} is not JSON (Expecting value: line 1 column 1 (char 0)).",
    ]
    [warning] = [r.getMessage() for r in caplog.records if "cannot read" in r.getMessage()]
    assert "is not JSON" in warning or "format 1" in warning
    # The dashboard and the statistics download say that figures are left out.
    page = admin_client.get("/signals/").content.decode()
    assert "Left out: the statistics of 2 processes that could not be read" in page
    assert admin_client.get("/signals/stats.json").json()["unreadable"] == 2


def _store_of_another_process() -> LatencyStore:
    """Statistics holding one call of ``_noted``, as another process would have them."""
    other = LatencyStore()
    with capture() as events:
        pizza_ordered.connect(_noted, weak=False)
        try:
            pizza_ordered.send(sender="elsewhere", name="calzone")
        finally:
            pizza_ordered.disconnect(_noted)
    other.record_many(events)
    return other


def _noted(sender: Any, **kwargs: Any) -> str:
    return "noted"


def test_redis_lost_and_back(
    servers: list[DaphneServer],
    project_db: Path,
    redis_server: RedisServer,
    session_key: str,
) -> None:
    first = servers[0]

    async def next_save(socket: Any) -> list[dict[str, str]]:
        status, _ = await asyncio.to_thread(http_get, first.url + "/toppings/save/?name=before")
        assert status == 200
        return await collect(
            socket, lambda seen: any(row["signal"].endswith("post_save") for row in seen)
        )

    async def before() -> None:
        socket = await open_dashboard_socket(first.ws_url, session_key, first.url)
        try:
            await next_save(socket)
        finally:
            await socket.close()

    asyncio.run(before())
    redis_server.stop()
    # Requests keep succeeding while their events cannot be published.
    started = time.monotonic()
    statuses = [http_get(first.url + f"/toppings/save/?name=lost{i}")[0] for i in range(5)]
    assert statuses == [200] * 5
    assert time.monotonic() - started < 5
    time.sleep(1)  # the publisher's next attempt fails and drops the pending batch
    redis_server.start()

    async def after() -> int:
        # The publisher may be waiting out its back-off (up to 5 s) when Redis returns.
        deadline = time.monotonic() + 2 * EVENT_TIMEOUT
        while True:  # as the page does: reconnect until the server has Redis again
            try:
                return await dropped_and_saved()
            except (OSError, ConnectionClosed):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    attempts = iter(range(1000))

    async def dropped_and_saved() -> int:
        socket = await open_dashboard_socket(first.ws_url, session_key, first.url)
        try:
            url = f"{first.url}/toppings/save/?name=after{next(attempts)}"
            status, _ = await asyncio.to_thread(http_get, url)
            assert status == 200
            seen: list[dict[str, str]] = []
            dropped = 0
            async with asyncio.timeout(EVENT_TIMEOUT):
                while not (dropped and any(row["signal"].endswith("post_save") for row in seen)):
                    message = str(await socket.recv())
                    seen += rows(message)
                    counter = re.search(r'<span id="sd-dropped">(\d+)</span>', message)
                    dropped = int(counter.group(1)) if counter else dropped
            return dropped
        finally:
            await socket.close()

    # The stream is back, and the events lost meanwhile are counted.
    assert asyncio.run(after()) > 0


def _host() -> str:
    import socket

    return socket.gethostname()


def _published_histograms(url: str, expected_counts: dict[int, int]) -> dict[int, Histogram]:
    """Each server's own histogram of the topping receiver, once it has published them all."""
    deadline = time.monotonic() + EVENT_TIMEOUT
    while True:
        found: dict[int, Histogram] = {}
        with redis.Redis.from_url(url) as client:
            for key in client.scan_iter(match=f"{STATS_KEY_PREFIX}*"):
                pid = int(key.decode().rpartition(":")[2])
                snapshot = json.loads(client.get(key) or "{}")
                for series in snapshot.get("calls", []):
                    if series["receiver"] == TOPPING_RECEIVER:
                        histogram = Histogram.merged([SealedHistogram.unpack(series["expired"])])
                        for _, part in series["slices"]:
                            histogram.merge(SealedHistogram.unpack(part))
                        found[pid] = histogram
        counts = {pid: histogram.count for pid, histogram in found.items()}
        if all(counts.get(pid) == count for pid, count in expected_counts.items()):
            return {pid: found[pid] for pid in expected_counts}
        if time.monotonic() > deadline:
            raise AssertionError(f"published counts {counts}, expected {expected_counts}")
        time.sleep(0.1)


def _get_with_session(url: str, session_key: str) -> tuple[int, str]:
    import urllib.request

    request = urllib.request.Request(url, headers={"Cookie": f"sessionid={session_key}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read().decode()


def test_signals_tail_follows_other_processes_in_the_terminal(
    project_db: Path, redis_server: RedisServer
) -> None:
    options = ["--json", "--limit", "1", "--signal", "pizza_ordered"]
    tail = subprocess.Popen(
        [sys.executable, "-m", "django", "signals_tail", *options, "--timeout", "30"],
        cwd=REPO,
        env=project_env(project_db, redis_server.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The tail joins the stream at some point after it starts: send until it has printed.
        deadline = time.monotonic() + EVENT_TIMEOUT * 2
        while tail.poll() is None and time.monotonic() < deadline:
            command = run_command(["shell", "-c", SEND_CUSTOM_SIGNAL], project_db, redis_server.url)
            assert command.returncode == 0, command.stderr
        output, errors = tail.communicate(timeout=EVENT_TIMEOUT)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
    assert tail.returncode == 0, errors
    [line] = output.splitlines()
    row = json.loads(line)
    assert row["signal"] == "tests.urls.pizza_ordered"
    assert row["origin"]["kind"] == "command"
    assert row["origin"]["name"] == "shell"
    assert row["origin"]["pid"] != tail.pid


def test_the_publisher_appends_every_event_and_trims_the_history(
    redis_server: RedisServer, settings: Any
) -> None:
    def publish(*names: str) -> list[Any]:
        publisher = publishing.Publisher(redis_server.url, buffer_size=100)
        publisher.start()
        pizza_ordered.connect(_noted, weak=False)
        try:
            with capture() as events:
                for name in names:
                    pizza_ordered.send(sender="history", name=name)
        finally:
            pizza_ordered.disconnect(_noted)
            recorder.drain()
            publisher.close()
        assert publisher.error == ""
        assert publisher.sent == len(names)
        return list(events)

    config = {**settings.SIGNAL_DASHBOARD, "REDIS_URL": redis_server.url}
    with redis.Redis.from_url(redis_server.url) as client:
        # Whole stream nodes are trimmed: one entry per node makes "about N" exactly N.
        client.config_set("stream-node-max-entries", 1)
        client.delete(connection.EVENTS_KEY)
        client.xadd(connection.EVENTS_KEY, {"row": b"", "event": b""}, id="1-0")  # long past
    settings.SIGNAL_DASHBOARD = {**config, "HISTORY_SIZE": 100}
    events = publish("margherita", "marinara", "diavola")
    rows = history.recent_rows(10)
    assert [row["id"] for row in rows] == [event.uid for event in reversed(events)]
    newest = history.event(rows[0]["history_id"])
    assert newest == json.loads(json.dumps(events[-1].as_dict()))
    assert newest["payload"] == {"name": "diavola"}
    assert newest["receivers"][0]["result"] == "noted"

    settings.SIGNAL_DASHBOARD = {**config, "HISTORY_SIZE": 2}
    [last] = publish("capricciosa")
    assert [row["id"] for row in history.recent_rows(10)] == [last.uid, events[-1].uid]


def test_the_publisher_drains_the_recorder_itself(
    redis_server: RedisServer, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "REDIS_URL": redis_server.url}
    # A recorder whose thread never runs: only the publisher can drain it.
    idle = Recorder()
    monkeypatch.setattr(send, "outbox", idle.outbox)
    monkeypatch.setattr(publishing, "recorder", idle)

    async def no_statistics(self: publishing.Publisher, client: Any) -> None:
        pass  # reading them would drain the recorder too, a flush later

    monkeypatch.setattr(publishing.Publisher, "_write_stats", no_statistics)
    publisher = publishing.Publisher(redis_server.url, buffer_size=10)
    publisher.start()
    pizza_ordered.connect(_noted, weak=False)
    try:
        pizza_ordered.send(sender="drained", name="quattro stagioni")
        deadline = time.monotonic() + EVENT_TIMEOUT
        while publisher.sent < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        sent_while_running = publisher.sent  # close() would drain the recorder as it leaves
    finally:
        pizza_ordered.disconnect(_noted)
        publisher.close()
    assert sent_while_running == 1
    [row] = history.recent_rows(1)
    assert row["sender"] == "drained"


def test_statistics_that_take_long_to_write_are_written_less_often(
    redis_server: RedisServer, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "REDIS_URL": redis_server.url}
    # Without the share, every change would be written at once; with this one, any write takes
    # "too long" and holds the next one back for ages.
    monkeypatch.setattr(publishing, "STATS_INTERVAL", 0.0)
    monkeypatch.setattr(publishing, "STATS_SHARE", 1e-12)
    publisher = publishing.Publisher(redis_server.url, buffer_size=10)
    key = STATS_KEY_PREFIX + SOURCE

    def send_and_write(name: str) -> Any:
        pizza_ordered.connect(_noted, weak=False)
        try:
            pizza_ordered.send(sender=name, name="calzone")
        finally:
            pizza_ordered.disconnect(_noted)
        recorder.drain()

        async def write() -> Any:
            client = redis.asyncio.Redis.from_url(redis_server.url)
            try:
                await publisher._write_stats(client)
                return json.loads(await client.get(key) or "{}")
            finally:
                await client.aclose()

        return asyncio.run(write())

    with redis.Redis.from_url(redis_server.url) as client:
        client.delete(key)
    first = send_and_write("first-sender")
    assert "first-sender" in {series["sender"] for series in first["sends"]}
    second = send_and_write("second-sender")
    assert "second-sender" not in {series["sender"] for series in second["sends"]}
    assert publisher._stats_interval > 3600


def test_statistics_that_take_long_to_merge_are_merged_less_often(
    redis_server: RedisServer, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "REDIS_URL": redis_server.url}
    monkeypatch.setattr(history.MergedCache, "store", None)
    monkeypatch.setattr(history.MergedCache, "ttl", 0.0)
    # Without the share, statistics would be merged afresh at every read; with this one, any
    # merge takes "too long" and its result is kept for ages.
    monkeypatch.setattr(history, "MERGED_STATS_TTL", 0.0)
    monkeypatch.setattr(history, "STATS_SHARE", 1e-12)
    other_key = STATS_KEY_PREFIX + "otherhost:1"
    with redis.Redis.from_url(redis_server.url) as client:
        client.set(other_key, json.dumps(LatencyStore().snapshot("otherhost:1")))
        merged = backend().latency_store()
        assert isinstance(merged, MergedStore)
        client.set(other_key + "0", json.dumps(LatencyStore().snapshot("otherhost:10")))
        assert backend().latency_store() is merged
        assert merged.sources == ["otherhost:1", SOURCE]
        assert history.MergedCache.ttl > 3600
        client.delete(other_key, other_key + "0")


# A command whose receiver of the custom signal saves a topping: the save's post_save (which
# has a receiver, so it is recorded) is a send nested in the custom signal's.
SEND_WITH_NESTED_SENDS = (
    "from django.db.models.signals import post_save; "
    "from tests.urls import pizza_ordered; "
    "from signal_dashboard.demo.pizzeria.models import Topping; "
    "post_save.connect(lambda sender, **kwargs: 'saved', sender=Topping, weak=False); "
    "pizza_ordered.connect("
    "lambda sender, name, **kwargs: Topping.objects.create(name=name).name, weak=False); "
    "pizza_ordered.send(sender='shell', name='calzone')"
)
PAGE_ROW = re.compile(r'<tr class="sd-row[^"]*" data-id="([^"]+)"[^>]*hx-get="([^"]+)"')


@pytest.fixture
def merged_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the pages cache of every process's statistics is put back after the test."""
    for name in ("store", "read_at", "ttl", "error"):
        monkeypatch.setattr(history.MergedCache, name, getattr(history.MergedCache, name))
    monkeypatch.setattr(history.MergedCache, "store", None)


def test_another_process_send_is_detailed_with_its_nested_sends(
    project_db: Path,
    redis_server: RedisServer,
    settings: Any,
    admin_client: Client,
    merged_cache: None,
) -> None:
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "REDIS_URL": redis_server.url}
    command = run_command(["shell", "-c", SEND_WITH_NESTED_SENDS], project_db, redis_server.url)
    assert command.returncode == 0, command.stderr
    rows = history.recent_rows(100)
    [ordered] = [
        row for row in rows if row["signal"] == "tests.urls.pizza_ordered" and "type" not in row
    ]
    nested = [row for row in reversed(rows) if row["parent_id"] == ordered["id"]]
    assert "django.db.models.signals.post_save" in {row["signal"] for row in nested}
    # Each send's detail URL, as the page's rows link to it.
    urls = dict(PAGE_ROW.findall(admin_client.get("/signals/").content.decode()))
    detail = admin_client.get(urls[ordered["id"]]).content.decode()
    assert "command shell" in detail
    nested_sends = detail.partition("<h3>Nested sends</h3>")[2]
    assert re.findall(r'hx-get="([^"]+)"', nested_sends) == [urls[row["id"]] for row in nested]
    # From a nested send, back to the send it was made in.
    child = admin_client.get(urls[nested[-1]["id"]]).content.decode()
    sent_inside = re.search(r'<dt>Sent inside</dt>\s*<dd><a href="#" hx-get="([^"]+)"', child)
    assert sent_inside is not None
    assert sent_inside.group(1) == urls[ordered["id"]]


def test_the_events_download_lists_every_process_events_as_the_page_does(
    project_db: Path,
    redis_server: RedisServer,
    settings: Any,
    admin_client: Client,
    merged_cache: None,
) -> None:
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "REDIS_URL": redis_server.url}
    command = run_command(["shell", "-c", SEND_WITH_NESTED_SENDS], project_db, redis_server.url)
    assert command.returncode == 0, command.stderr
    # No publisher runs in the tests' process: its own send is not in Redis's history.
    recorder.clear()
    pizza_ordered.connect(_noted, weak=False)
    try:
        pizza_ordered.send(sender="here", name="margherita")
    finally:
        pizza_ordered.disconnect(_noted)
    [here] = [event for event in recorder.events if event.signal is pizza_ordered]

    def listed(query: dict[str, str]) -> tuple[list[str], list[dict[str, Any]]]:
        """The ids of the rows the page lists, and the events the download lists."""
        page = admin_client.get("/signals/", query).content.decode()
        download = admin_client.get("/signals/events.ndjson", query)
        lines = b"".join(download.streaming_content).decode().splitlines()
        return [id_ for id_, _ in PAGE_ROW.findall(page)], [json.loads(line) for line in lines]

    for query in ({}, {"signal": "pizza_ordered"}, {"sender": "topping"}):
        ids, events = listed(query)
        assert ids, query
        # The page lists the newest first, the download the oldest first.
        assert [event["id"] for event in events] == ids[::-1], query
    # The command's send (its connect() is a finding of its own: a connect while it ran).
    [ordered] = [event for event in listed({"signal": "pizza_ordered"})[1] if "type" not in event]
    assert ordered["origin"]["kind"] == "command"
    assert ordered["pid"] != here.origin.pid
    assert ordered["receivers"][0]["result"] == "calzone"
    [row] = [row for row in history.recent_rows(100) if row["id"] == ordered["id"]]
    assert ordered == history.event(row["history_id"])
    # Without Redis, both fall back to this process's own.
    redis_server.stop()
    ids, events = listed({"signal": "pizza_ordered"})
    assert ids == [event["id"] for event in events] == [here.uid]
    assert events == [json.loads(json.dumps(here.as_dict()))]


def test_stop_recording_stops_every_process_and_says_who(
    servers: list[DaphneServer], redis_server: RedisServer, settings: Any
) -> None:
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "REDIS_URL": redis_server.url}
    second = servers[1]

    def saves_recorded(name: str, within: float) -> bool:
        assert http_get(f"{second.url}/toppings/save/?name={name}")[0] == 200
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            rows = history.recent_rows(500)
            if any(row["origin"].get("path") == "/toppings/save/" for row in rows):
                return True
            time.sleep(0.2)
        return False

    try:
        switch = backend().set_recording(False, "chef")
        assert (switch.on, switch.by) == (False, "chef")
        # The other processes' publishers read the switch within RECORDING_POLL.
        time.sleep(connection.RECORDING_POLL * 2.5)
        assert not saves_recorded("unseen", within=3.0)  # a send reaches Redis in 0.1 s
        stored = backend().recording()
        assert (stored.on, stored.by) == (False, "chef")
        backend().set_recording(True, "chef")
        time.sleep(connection.RECORDING_POLL * 2.5)
        assert saves_recorded("seen", within=EVENT_TIMEOUT)
    finally:
        backend().set_recording(True, "")


def test_a_process_without_a_publisher_reads_the_switch_at_most_once_a_poll(
    redis_server: RedisServer, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "REDIS_URL": redis_server.url}
    monkeypatch.setattr(publishing.Publisher, "current", None)
    monkeypatch.setattr(publishing, "_switch_read", None)
    reads = []
    real = publishing._read_switch
    monkeypatch.setattr(publishing, "_read_switch", lambda client: reads.append(1) or real(client))
    for _ in range(50):  # as many pushes of the dashboards
        assert backend().recording().on
    assert len(reads) == 1
    monkeypatch.setattr(publishing, "RECORDING_POLL", 0.0)
    assert backend().recording().on
    assert len(reads) == 2


LOSE_A_RECEIVER = (
    "import gc; from tests.urls import pizza_ordered; "
    "exec('def on_order(sender, **kwargs): pass'); "
    "pizza_ordered.connect(on_order); del on_order; gc.collect()"
)


def test_another_process_findings_reach_the_page_and_the_download(
    project_db: Path,
    redis_server: RedisServer,
    settings: Any,
    admin_client: Client,
    merged_cache: None,
) -> None:
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "REDIS_URL": redis_server.url}
    command = run_command(["shell", "-c", LOSE_A_RECEIVER], project_db, redis_server.url)
    assert command.returncode == 0, command.stderr
    [lost] = [
        row
        for row in history.recent_rows(100)
        if row.get("type") == "lost" and row["receivers"][0].endswith("on_order")
    ]
    assert lost["signal"] == "tests.urls.pizza_ordered"
    assert lost["origin"]["kind"] == "command"
    assert "Receiver lost" in lost["error"]
    page = admin_client.get("/signals/").content.decode()
    assert f'data-id="{lost["id"]}"' in page
    assert 'class="sd-row sd-failed sd-finding"' in page
    download = admin_client.get("/signals/events.ndjson", {"signal": "pizza_ordered"})
    records = [json.loads(line) for line in b"".join(download.streaming_content).splitlines()]
    [record] = [record for record in records if record["id"] == lost["id"]]
    assert record["type"] == "lost"
    assert record["locations"] == [lost_location(record)]
    detail = admin_client.get(f"/signals/events/{lost['id']}/?h={lost['history_id']}")
    assert "garbage-collected while connected" in detail.content.decode()


def lost_location(record: dict[str, Any]) -> str:
    """The shell command's connect(): code run by ``shell -c`` has the file name <string>."""
    [location] = record["locations"]
    assert location.startswith("<string>:")
    return location


# A receiver run more times inside one command than makes a storm.
STORMING = "tests.urls.on_every_order"
STORM_CALLS = DEFAULTS["STORM_THRESHOLD"] + 10
SEND_A_STORM = (
    f"from tests.urls import pizza_ordered; "
    f"[pizza_ordered.send(sender='storm', name=str(n)) for n in range({STORM_CALLS})]"
)
CONNECT_AND_SEND_A_STORM = (
    "from tests.urls import on_every_order, pizza_ordered; "
    "pizza_ordered.connect(on_every_order, weak=False); " + SEND_A_STORM
)
# Every filter field: the statistics answer some, the recent events the others.
EVERY_FILTER = [
    {"sender": "storm"},
    {"signal": "pizza_ordered"},
    {"receiver": "on_every_order"},
    {"path": "/order/"},
    {"process": f":{os.getpid()}"},
    {"min_duration_ms": "0"},
    {"errors_only": "on"},
    {"hide_signals": "tests.urls.pizza_ordered"},
    {"hide_senders": "storm"},
    {"hide_receivers": STORMING},
]
# Its row of the latency table, flagged: how many requests or commands stormed, most calls.
STORM_ROW = re.compile(
    rf'sd-lat-row[^"]*sd-storm[^"]*" data-name="{re.escape(STORMING)}"'
    r"[^\n]*?storm</span> (\d+)&times; · up to (\d+) calls"
)


@pytest.fixture
def storms_here_and_elsewhere(
    project_db: Path, redis_server: RedisServer, settings: Any, merged_cache: None, db: None
) -> Iterator[None]:
    """A storm of ``on_every_order`` in a command of another process (its events and statistics
    in Redis) and in one of this process, whose request to ``/order/`` ran it once more.

    The settings are left without Redis: each test names the backend it reads.
    """
    recorder.clear()
    command = run_command(["shell", "-c", CONNECT_AND_SEND_A_STORM], project_db, redis_server.url)
    assert command.returncode == 0, command.stderr
    pizza_ordered.connect(on_every_order, weak=False)
    try:
        call_command("shell", command=SEND_A_STORM, verbosity=0)
        Client().get("/order/")
        yield
    finally:
        pizza_ordered.disconnect(on_every_order)


def _backends(settings: Any, url: str) -> Iterator[int]:
    """Switch to the local backend, then to Redis; yield how many storms of ``on_every_order``
    each one's statistics hold (with Redis, the other process's too)."""
    yield 1
    settings.SIGNAL_DASHBOARD = {**settings.SIGNAL_DASHBOARD, "REDIS_URL": url}
    # The other process wrote its events and, as it exited, its statistics to Redis.
    assert any(
        row["sender"] == "storm" and row["origin"]["pid"] != os.getpid()
        for row in history.recent_rows(500)
    )
    merged = backend().latency_store()
    assert isinstance(merged, MergedStore)
    assert (merged.storms[STORMING].requests, merged.storms[STORMING].max_calls) == (
        2,
        STORM_CALLS,
    )
    yield 2


def test_every_filter_answers_on_both_backends_with_storms_of_this_and_another_process(
    storms_here_and_elsewhere: None,
    redis_server: RedisServer,
    settings: Any,
    admin_client: Client,
) -> None:
    for storms in _backends(settings, redis_server.url):
        for query in EVERY_FILTER:
            page = admin_client.get("/signals/", query)
            assert page.status_code == 200, (storms, query)
            stats = admin_client.get("/signals/stats.json", query)
            assert stats.status_code == 200, (storms, query)
            download = admin_client.get("/signals/events.ndjson", query)
            assert download.status_code == 200, (storms, query)
            for line in b"".join(download.streaming_content).splitlines():
                json.loads(line)
        # The table of the request's calls, made from the recent events, still counts the
        # receiver's storms: this process's, and with Redis the other one's.
        html = admin_client.get("/signals/", {"path": "/order/"}).content.decode()
        flagged = STORM_ROW.search(html)
        assert flagged is not None, storms
        assert flagged.groups() == (str(storms), str(STORM_CALLS))
        stats = admin_client.get("/signals/stats.json", {"path": "/order/"}).json()
        assert stats["source"] == "buffer"
        [row] = [row for row in stats["receivers"] if row["name"] == STORMING]
        assert row["count"] == 1
        assert (row["storm_requests"], row["storm_max_calls"]) == (storms, STORM_CALLS)


def test_the_socket_pushes_the_table_of_a_path_on_both_backends_with_every_storm(
    storms_here_and_elsewhere: None,
    redis_server: RedisServer,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def pushed_table() -> str:
        communicator = WebsocketCommunicator(
            consumers.DashboardConsumer.as_asgi(), "/ws/signals/?path=/order/"
        )
        communicator.scope["user"] = User(username="chef", is_staff=True, is_active=True)
        connected, _ = await communicator.connect(timeout=EVENT_TIMEOUT)
        assert connected
        try:
            await communicator.send_to(text_data=json.dumps({"action": "table"}))
            async with asyncio.timeout(EVENT_TIMEOUT):
                while 'id="sd-latency"' not in (
                    message := await communicator.receive_from(EVENT_TIMEOUT)
                ):
                    pass
            return message
        finally:
            await communicator.disconnect()

    for storms in _backends(settings, redis_server.url):
        # Tables another backend's socket was sent are not this one's.
        monkeypatch.setattr(fragments, "shared_tables", fragments.SharedTables())
        flagged = STORM_ROW.search(async_to_sync(pushed_table)())
        assert flagged is not None, storms
        assert flagged.groups() == (str(storms), str(STORM_CALLS))
