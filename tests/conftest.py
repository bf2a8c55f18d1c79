"""Fixtures shared by the test modules."""

from tests.redis_server import project_db, redis_server

__all__ = ["project_db", "redis_server"]
