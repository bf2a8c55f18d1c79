"""A real ``redis-server`` for the multi-process tests, on a free port of 127.0.0.1.

The server keeps nothing on disk (no RDB snapshots, no AOF), so a restart starts empty. It can
be stopped and started again on the same port, as a Redis outage in the middle of a stream is.

tests/conftest.py makes the fixtures (``redis_server``, ``project_db``) available to every test::

    @pytest.mark.redis
    def test_something(redis_server: RedisServer) -> None:
        client = redis.Redis.from_url(redis_server.url)

``redis-server`` itself comes from Debian (tests/run.py installs it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from signal_dashboard.integrations.testing.redis_server import RedisServer


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh, empty Redis server for one test, stopped after it."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def project_db(tmp_path: Path, redis_server: RedisServer) -> Path:
    """A migrated SQLite file that processes started with tests.processes share."""
    from tests.processes import migrate

    db_path = tmp_path / "project.sqlite3"
    migrate(db_path, redis_server.url)
    return db_path
