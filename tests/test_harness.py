"""The multi-process harness itself: a real Redis, a shared database, Daphne in a child."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from websockets.exceptions import ConnectionClosed

from signal_dashboard.demo.pizzeria.models import Topping
from signal_dashboard.integrations.testing.processes import http_get, open_dashboard_socket
from signal_dashboard.integrations.testing.redis_server import RedisServer, RedisServerNotFound
from signal_dashboard.web.consumers import FORBIDDEN
from tests.processes import (
    DaphneServer,
    migrate,
    session_cookie,
)

# How long after a request its event may take to reach an open dashboard (seconds).
EVENT_TIMEOUT = 5.0


@pytest.fixture
def daphne(project_db: Path, redis_server: RedisServer) -> Iterator[DaphneServer]:
    with DaphneServer(project_db, redis_server.url) as server:
        yield server


def _tables(db_path: Path) -> set[str]:
    with sqlite3.connect(db_path) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows}


def test_missing_redis_server_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RedisServerNotFound, match=r"tests/run\.py.*apt-get install redis-server"):
        RedisServer()


@pytest.mark.redis
def test_redis_server_restarts_empty_on_the_same_port(redis_server: RedisServer) -> None:
    url = redis_server.url
    with redis.Redis.from_url(url) as client:
        assert client.set("kept", "no")

    redis_server.stop()
    assert not redis_server.ping()

    redis_server.start()
    assert redis_server.url == url
    assert redis_server.ping()
    with redis.Redis.from_url(url) as client:
        assert client.get("kept") is None


@pytest.mark.redis
def test_migrate_creates_the_shared_database(tmp_path: Path, redis_server: RedisServer) -> None:
    db_path = tmp_path / "shared.sqlite3"

    migrate(db_path, redis_server.url)

    assert {Topping._meta.db_table, "django_session", "auth_user"} <= _tables(db_path)


@pytest.mark.redis
def test_daphne_serves_the_project_from_the_shared_database(
    daphne: DaphneServer, project_db: Path
) -> None:
    status, body = http_get(daphne.url + "/toppings/save/?name=harness")

    assert (status, body.split()[0]) == (200, "saved")
    assert daphne.pid != os.getpid()
    with sqlite3.connect(project_db) as connection:
        names = [name for (name,) in connection.execute("SELECT name FROM pizzeria_topping")]
    assert names == ["harness"]


@pytest.mark.redis
def test_dashboard_socket_refuses_a_session_that_is_not_logged_in(daphne: DaphneServer) -> None:
    async def close_code() -> int | None:
        socket = await open_dashboard_socket(daphne.ws_url, "not-a-session", daphne.url)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), EVENT_TIMEOUT)
        return None if closed.value.rcvd is None else closed.value.rcvd.code

    assert asyncio.run(close_code()) == FORBIDDEN


async def _first_row(watched: DaphneServer, requested: DaphneServer, session_key: str) -> str:
    """The first pushed row of a request to ``requested``, seen on a dashboard of ``watched``."""
    socket = await open_dashboard_socket(watched.ws_url, session_key, watched.url)
    try:
        async with asyncio.timeout(EVENT_TIMEOUT):
            status, _ = await asyncio.to_thread(http_get, requested.url + "/toppings/save/")
            assert status == 200
            # Status lines arrive with no event at all: wait for the request's own row.
            while 'data-signal="django.db.models.signals.post_save"' not in (
                message := str(await socket.recv())
            ):
                pass
            return message
    finally:
        await socket.close()


@pytest.mark.redis
def test_dashboard_socket_streams_a_request_s_signals(
    daphne: DaphneServer,
    project_db: Path,
    redis_server: RedisServer,
) -> None:
    session_key = session_cookie(project_db, redis_server.url, "staff", "password")

    assert "post_save" in asyncio.run(_first_row(daphne, daphne, session_key))


@pytest.mark.redis
def test_dashboard_socket_streams_signals_of_another_process(
    daphne: DaphneServer,
    project_db: Path,
    redis_server: RedisServer,
) -> None:
    session_key = session_cookie(project_db, redis_server.url, "staff", "password")

    with DaphneServer(project_db, redis_server.url) as other:
        assert "post_save" in asyncio.run(_first_row(daphne, other, session_key))
