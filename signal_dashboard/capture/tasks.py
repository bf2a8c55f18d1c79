"""Task runs as origins: Django's tasks framework (``django.tasks``, or the ``django-tasks``
backport on Django 5.2), in whatever backend runs them.

A task run is an origin like a request: from its ``task_started`` send to its ``task_finished``
send, every send made at the top level of its context names it. Backends send those signals
around the task's body (the in-process ``ImmediateBackend`` inside ``enqueue()``, a worker
such as ``django-tasks-db``'s ``db_worker`` in its own process), so the signals are the
boundaries, found by the send path (send.py) as it finds request_started's. (A backend that sends
none runs tasks no origin names.) Celery's task runs begin and end here too (celery.py).

``task_enqueued`` is sent where the task is enqueued. The origin current there (a request, a
command, another task) is recorded as the task's *enqueuer*: the task's origin names it, and
the enqueuer lists the task. In another process (a worker) the enqueuer is found by the task's
id when the dashboard reads it (see :func:`enqueuer_of`), so a worker looks nothing up.

A task whose backend runs it inside a receiver (the in-process backend, enqueued by a
receiver) is part of that receiver's call: its sends stay nested under it, as every send a
receiver makes does, and it is listed as enqueued.

Nothing here keeps a task's result object, arguments or return value: origins hold strings.
"""

from __future__ import annotations

import sys
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from time import perf_counter_ns
from typing import Any

from .context import PROCESS_ORIGIN, Origin, current_origin
from .labels import origin_label
from .outbox import outbox

# The modules whose signals are task boundaries: Django's own, and the backport's.
SIGNAL_MODULES = ("django.tasks.signals", "django_tasks.signals")
# Tasks an origin lists as enqueued by it (the rest are counted).
TASKS_LISTED = 20
# Enqueuers remembered by task id (for a run in another process, or later), and task origins
# made by a task_enqueued send and not yet started here.
ENQUEUERS_KEPT = 1024
ENQUEUED_KEPT = 64
MAX_ERROR = 200

# What a boundary send does: given its keyword arguments and the origin current where it is
# sent, the origin the send belongs to.
Boundary = Callable[[dict[str, Any], Origin], Origin]

# id() of each task signal -> (a weak reference to it, its boundary). The modules are imported
# by the project (Django does not import django.tasks until something uses it), so they are
# looked for again as signals are connected to (see notice()), never imported here: importing
# one connects receivers of its own.
boundaries: dict[int, tuple[weakref.ReferenceType[Any], Boundary]] = {}
_modules_seen: set[str] = set()

_enqueuers: OrderedDict[str, dict[str, Any]] = OrderedDict()
_enqueued: OrderedDict[str, Origin] = OrderedDict()


def notice() -> None:
    """Look for task signal modules imported since the last look (cheap: a dictionary lookup
    per module once both are found)."""
    if len(_modules_seen) == len(SIGNAL_MODULES):
        return
    for name in SIGNAL_MODULES:
        if name in _modules_seen:
            continue
        module = sys.modules.get(name)
        signals = [getattr(module, attr, None) for attr in _SIGNAL_NAMES]
        if module is None or any(signal is None for signal in signals):
            continue  # not imported, or still being imported
        _modules_seen.add(name)
        for signal, boundary in zip(signals, _BOUNDARIES, strict=True):
            boundaries[id(signal)] = (weakref.ref(signal), boundary)


def boundary_of(signal: object) -> Boundary | None:
    """What a send of ``signal`` does as a task boundary, if it is a task signal."""
    entry = boundaries.get(id(signal))
    return entry[1] if entry is not None and entry[0]() is signal else None


def link(origin: Origin) -> dict[str, Any]:
    """How a task names the origin that enqueued it: its label, kind, and where to find it."""
    return {
        "label": origin_label(origin.as_dict()),
        "kind": origin.kind,
        "id": origin.id,
        "pid": origin.pid,
        "host": origin.host,
    }


def enqueuer_of(task_id: str | None) -> dict[str, Any] | None:
    """The origin that enqueued task ``task_id`` in this process (its :func:`link`), if known."""
    return None if task_id is None else _enqueuers.get(task_id)


def enqueued_by(origin: Mapping[str, Any]) -> str | None:
    """What enqueued the task run an origin (``Origin.as_dict()``) names, as the dashboard
    names origins: as the run knew it, or as this process recorded its enqueuing."""
    if origin.get("kind") != "task":
        return None
    known = origin.get("enqueued_by")
    if known:
        return str(known)
    found = enqueuer_of(origin.get("task_id"))
    return None if found is None else found["label"]


def _facts(result: Any) -> tuple[str, str, str | None, int | None, str | None]:
    """(name, id, backend, attempt, status) of a task result, read from its fields (a slotted
    dataclass's) only: never its return value, which raises unless the task finished."""
    function = getattr(getattr(result, "task", None), "func", None)
    if function is not None:
        name = f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', '?')}"
    else:
        name = "task"
    status = getattr(result, "status", None)
    worker_ids = getattr(result, "worker_ids", None)
    return (
        name,
        str(getattr(result, "id", None)),
        getattr(result, "backend", None),
        len(worker_ids) if type(worker_ids) is list else None,
        None if status is None else str(getattr(status, "value", status)),
    )


def _error(result: Any) -> str | None:
    """The last error of a failed task, as "Type: message" (a traceback's last line)."""
    errors = getattr(result, "errors", None) or []
    if not errors:
        return None
    last = errors[-1]
    lines = [line for line in str(getattr(last, "traceback", "")).splitlines() if line.strip()]
    text = lines[-1] if lines else str(getattr(last, "exception_class_path", ""))
    return text[:MAX_ERROR]


def _remember(table: OrderedDict[str, Any], key: str, value: Any, kept: int) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > kept:
        table.popitem(last=False)


def enqueued(name: str, task_id: str, backend: str | None, enqueuer: Origin) -> None:
    """Record that ``enqueuer`` enqueued task ``task_id``: the enqueuer lists it, and a run of
    it in this process (or a dashboard here showing another's) names the enqueuer."""
    _remember(_enqueuers, task_id, link(enqueuer), ENQUEUERS_KEPT)
    # (Listed once: a retry run where it was called is enqueued by its caller again.)
    listed = any(task["task_id"] == task_id for task in enqueuer.enqueued)
    if enqueuer is not PROCESS_ORIGIN and not listed:
        if len(enqueuer.enqueued) < TASKS_LISTED:
            enqueuer.enqueued.append({"name": name, "task_id": task_id, "backend": backend})
        else:
            enqueuer.enqueued_more += 1


def begin(
    name: str, task_id: str, backend: str | None, attempt: int | None, status: str | None
) -> Origin:
    """A task run begins here: its origin is current until :func:`end`. A task enqueued here
    a moment ago (the in-process backend) continues the origin its task_enqueued send made."""
    origin = _enqueued.pop(task_id, None) or _task_origin(name, task_id, backend)
    origin.attempt, origin.task_status = attempt, status
    origin.previous = current_origin.get()
    current_origin.set(origin)
    return origin


def end(
    name: str,
    task_id: str,
    backend: str | None,
    attempt: int | None,
    status: str | None,
    error: str | None = None,
) -> Origin:
    """A task run ends: its origin is recorded, and the origin before it is current again.
    One whose start was not seen here (sent before tracing began, or ignored) is made now."""
    current = current_origin.get()
    if current.kind == "task" and current.task_id == task_id:
        origin = current
        current_origin.set(origin.previous or PROCESS_ORIGIN)
        origin.previous = None
    else:
        origin = _task_origin(name, task_id, backend)
    origin.attempt, origin.task_status = attempt, status
    origin.error = error or origin.error
    origin.duration_ns = perf_counter_ns() - origin.started_ns
    outbox.put(origin)
    return origin


def _task_origin(name: str, task_id: str, backend: str | None) -> Origin:
    """A new task run's origin, starting now, naming its enqueuer if known here."""
    return Origin(
        kind="task",
        name=name,
        task_id=task_id,
        backend=backend,
        started_ns=perf_counter_ns(),
        enqueued_by=_enqueuers.get(task_id),
    )


# --- Django's tasks framework: its signals are the boundaries ---------------------------------


def note_enqueued(named: dict[str, Any], enqueuer: Origin) -> tuple[Any, ...] | None:
    """Record the enqueuer of a task_enqueued send's task; its :func:`_facts`, or None if the
    send names no task."""
    result = named.get("task_result")
    if result is None:
        return None
    facts = _facts(result)
    enqueued(facts[0], facts[1], facts[2], enqueuer)
    return facts


def _enqueued_origin(named: dict[str, Any], current: Origin) -> Origin:
    """A task_enqueued send at the top level belongs to its task: an origin that its run
    continues if the run is here (the in-process backend), else that only this send names."""
    facts = note_enqueued(named, current)
    if facts is None:
        return current
    name, task_id, backend, _, status = facts
    origin = _task_origin(name, task_id, backend)
    origin.task_status = status
    _remember(_enqueued, task_id, origin, ENQUEUED_KEPT)
    return origin


def _started_origin(named: dict[str, Any], current: Origin) -> Origin:
    """A task run begins: its origin is current until its task_finished send."""
    result = named.get("task_result")
    return current if result is None else begin(*_facts(result))


def _finished_origin(named: dict[str, Any], current: Origin) -> Origin:
    """A task run ends. The task_finished send still belongs to the task (as
    request_finished to its request)."""
    result = named.get("task_result")
    if result is None:
        return current
    facts = _facts(result)
    return end(*facts, error=_error(result) if facts[4] == "FAILED" else None)


_SIGNAL_NAMES = ("task_enqueued", "task_started", "task_finished")
_BOUNDARIES: tuple[Boundary, ...] = (_enqueued_origin, _started_origin, _finished_origin)


def is_enqueued(signal: object) -> bool:
    """Whether ``signal`` is a task_enqueued signal (of either module)."""
    return boundary_of(signal) is _enqueued_origin
