"""Fixtures shared by the test modules."""

from tests.redis_server import project_db, redis_server

# pytester: test_signals_report.py runs pytest sessions of a small project.
pytest_plugins = ["pytester"]

__all__ = ["project_db", "redis_server"]
