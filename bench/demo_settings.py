"""The demo site as bench/throughput.py serves it: DEBUG off, configured by the environment.

- ``DEMO_DATABASE``: the SQLite file (required: the bench never touches demo.sqlite3);
- ``BENCH_TRACING``: ``on`` or ``off``;
- ``BENCH_REDIS_URL``: the Redis transport's server, if set.
"""

from __future__ import annotations

import os

from signal_dashboard.demo.settings import *  # noqa: F403
from signal_dashboard.demo.settings import LOGGING

DEBUG = False
# The demo's signal mistakes (a receiver connected twice among them) would change the workload.
PIZZERIA_SIGNAL_MISTAKES = False

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["DEMO_DATABASE"],
        "OPTIONS": {
            # Concurrent requests queue for SQLite's single writer instead of failing with
            # "database is locked": IMMEDIATE takes the write lock at BEGIN, so a transaction
            # never has to upgrade a read lock, and the busy timeout outlasts any queue.
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            # One fsync per commit would make the disk, not the server, the bottleneck.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
}

SIGNAL_DASHBOARD = {
    "ENABLED": os.environ.get("BENCH_TRACING") == "on",
    "REDIS_URL": os.environ.get("BENCH_REDIS_URL") or None,
}

# With DEBUG off Django logs server errors nowhere visible; the bench reads their cause (such as
# "database is locked") from the server's output.
LOGGING = {
    **LOGGING,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        **LOGGING["loggers"],
        "django.request": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
    },
}
