"""Celery task runs as origins (the ``CELERY`` setting).

Celery's signals are its own, not Django's, so they are not traced: they are the boundaries
of a task run, as the tasks framework's are (see tasks.py). Connected once each:

- ``before_task_publish``, where ``.delay()`` or ``.apply_async()`` is called: the origin
  running there (a request, a command, another task) is the task's enqueuer (a task run
  eagerly is published nowhere: its enqueuer is what runs where it runs);
- ``task_prerun``, in the worker: the task run's origin (its name, id, and attempt: its
  retries so far, plus one) is current for the Django signals its body sends;
- ``task_failure`` and ``task_retry``: what went wrong, for the run's record;
- ``task_postrun``: the run is recorded with Celery's state (``SUCCESS``, ``FAILURE``,
  ``RETRY``), and the origin before it is current again.

Each receiver returns nothing and never raises (Celery logs, and goes on past, a receiver that
raises; these count their failures instead): a task's result, exceptions and retries are
Celery's alone. Nothing here keeps a task's arguments or its result.
"""

from __future__ import annotations

from typing import Any

from celery import signals

from ..capture import tasks
from ..capture.context import current_origin

BACKEND = "celery"
MAX_ERROR = 200
_UID = "signal_dashboard.celery"

# Receivers that raised (and were kept from raising): a count for diagnostics.
failures = 0


def _published(sender: Any = None, headers: Any = None, **kwargs: Any) -> None:
    global failures
    try:
        task_id = headers.get("id") if isinstance(headers, dict) else None
        if task_id is not None:
            _enqueued(str(sender or headers.get("task")), str(task_id))
    except Exception:
        failures += 1


def _prerun(task_id: Any = None, task: Any = None, **kwargs: Any) -> None:
    global failures
    try:
        name = _name(task)
        # Run where it was called (eager: .apply(), or task_always_eager), it was published
        # nowhere: what called it is what is running here.
        if getattr(getattr(task, "request", None), "is_eager", False) is True:
            _enqueued(name, str(task_id))
        tasks.begin(name, str(task_id), BACKEND, _attempt(task), "STARTED")
    except Exception:
        failures += 1


def _failed(task_id: Any = None, exception: Any = None, **kwargs: Any) -> None:
    _note_error(task_id, exception)


def _retried(request: Any = None, reason: Any = None, **kwargs: Any) -> None:
    # A Retry carries the exception that made the task retry, if it was given one.
    _note_error(getattr(request, "id", None), getattr(reason, "exc", None) or reason)


def _postrun(task_id: Any = None, task: Any = None, state: Any = None, **kwargs: Any) -> None:
    global failures
    try:
        tasks.end(
            _name(task),
            str(task_id),
            BACKEND,
            _attempt(task),
            None if state is None else str(state),
        )
    except Exception:
        failures += 1


def _enqueued(name: str, task_id: str) -> None:
    """The origin running here enqueued the task; unless it is the task itself, retrying
    (a retry is published, or run, from its own run): its enqueuer stays the first's."""
    current = current_origin.get()
    if not (current.kind == "task" and current.task_id == task_id):
        tasks.enqueued(name, task_id, BACKEND, current)


def _note_error(task_id: Any, error: Any) -> None:
    """Keep what made the running task fail or retry, as "Type: message", for its record."""
    global failures
    try:
        origin = current_origin.get()
        if origin.kind == "task" and origin.task_id == str(task_id) and error is not None:
            try:
                message = str(error)[:MAX_ERROR]
            except Exception:  # str() of an exception is user code
                message = ""
            origin.error = f"{type(error).__qualname__}: {message}"
    except Exception:
        failures += 1


def _name(task: Any) -> str:
    return str(getattr(task, "name", None) or "task")


def _attempt(task: Any) -> int | None:
    """1 for a task's first run, 2 for its first retry, and so on."""
    retries = getattr(getattr(task, "request", None), "retries", None)
    return retries + 1 if isinstance(retries, int) else None


_RECEIVERS = (
    (signals.before_task_publish, _published),
    (signals.task_prerun, _prerun),
    (signals.task_failure, _failed),
    (signals.task_retry, _retried),
    (signals.task_postrun, _postrun),
)


def install() -> None:
    """Make Celery task runs origins (again safe to call)."""
    for signal, receiver in _RECEIVERS:
        signal.connect(receiver, weak=False, dispatch_uid=f"{_UID}.{receiver.__name__}")


def uninstall() -> None:
    for signal, receiver in _RECEIVERS:
        signal.disconnect(receiver, dispatch_uid=f"{_UID}.{receiver.__name__}")
