"""The read side: what pages, sockets and exports show, whichever transport the events came
through: the recent rows, the latency table with the request list, and a request's summary."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from ..backends import backend
from ..capture import tasks
from ..capture.context import HOST, PID, Origin
from ..capture.origins import origin_data
from ..conf import get_config
from ..record.filters import EventFilter
from ..record.recorder import recorder
from ..record.stats.table import TableQuery
from .rows import url_parts

# Rows of the latency table and of the request list a page or a socket shows.
MAX_TABLE_ROWS = 100
MAX_REQUEST_ROWS = 50


def tables_context(event_filter: EventFilter, query: TableQuery) -> dict[str, Any]:
    """What the latency table and the request list show, for a page or a socket push."""
    config = get_config()
    events = list(recorder.events) if event_filter.needs_events else []
    store = backend().latency_store()
    rows = store.table(query, event_filter, events, slow_ns=config["SLOW_MS"] * 1_000_000)
    return {
        "latency_rows": rows[:MAX_TABLE_ROWS],
        "latency_total": len(rows),
        "table": query,
        "window_seconds": store.window_seconds,
        "from_buffer": event_filter.needs_events,
        "unreadable": len(store.unreadable),
        "request_rows": _matching_requests(event_filter),
        "filtered": event_filter.active,
        "storm_threshold": store.storm_threshold,
        "slow_ms": config["SLOW_MS"],
    }


def page_state(event_filter: EventFilter, query: TableQuery) -> dict[str, Any]:
    """What a page's URL, socket URL and download links say, once the server has accepted a
    filter and a table query (see templates/signal_dashboard/_state.html)."""
    filter_query = event_filter.to_query()
    page = urlencode({**filter_query, **query.changed_query()})
    stats = urlencode({**filter_query, "span": query.to_query()["span"]})
    hidden_fields = [
        (name, sorted(getattr(event_filter, name)))
        for name in ("hide_signals", "hide_senders", "hide_receivers")
    ]
    return {
        "hidden_fields": hidden_fields,
        "hidden_labels": [
            (name, name.removeprefix("hide_").removesuffix("s"), label)
            for name, labels in hidden_fields
            for label in labels
        ],
        "page_query": f"?{page}" if page else "",
        "events_query": f"?{urlencode(filter_query)}" if filter_query else "",
        "stats_query": f"?{stats}",
        "filter_words": event_filter.describe(),
        "filter_active": event_filter.active,
    }


def _matching_requests(event_filter: EventFilter) -> list[dict[str, Any]]:
    """The newest finished requests, commands and task runs that the filter admits, newest
    first: this process's, and with Redis every other process's too."""
    rows = []
    for origin in reversed(list(recorder.requests)):
        summary = request_summary(origin)
        if event_filter.matches_request(summary):
            rows.append(summary)
            if len(rows) == MAX_REQUEST_ROWS:
                break
    try:
        published = backend().other_requests()
    except Exception:  # Redis cannot be read: this process's (the status line says why)
        published = []
    others = [
        summary
        for summary in map(_other_summary, published)
        if event_filter.matches_request(summary)
    ]
    if not others:
        return rows
    rows.extend(others)
    rows.sort(key=lambda summary: summary["finished_at"], reverse=True)
    return rows[:MAX_REQUEST_ROWS]


def recent_rows() -> list[dict[str, Any]]:
    """Rows of the recent events, newest first: every process's with the Redis backend (this
    process's if Redis cannot be read), else this process's."""
    return backend().recent_rows(get_config()["HISTORY_SIZE"])


def request_summary(origin: Origin) -> dict[str, Any]:
    """A finished request, command or task run of this process, as its row and waterfall
    show it: ``origin_data()`` with where to go from it."""
    before, after = url_parts("signal_dashboard:request")
    return _with_links(origin_data(origin), url=f"{before}{origin.id}{after}")


def other_request_summary(host: str, pid: int, origin_id: int) -> dict[str, Any] | None:
    """Another process's request, command or task run, as its row and waterfall show it, if
    the backend still has it."""
    for data in backend().other_requests():
        if (data.get("host"), data.get("pid"), data.get("id")) == (host, pid, origin_id):
            return _other_summary(data)
    return None


def _other_summary(data: dict[str, Any]) -> dict[str, Any]:
    """Another process's request, command or task run (its ``origin_data()``), with a link to
    its sends in the stream; a task's enqueuer found here if it is ours."""
    if data.get("kind") == "task" and not data.get("enqueued_by"):
        enqueuer = tasks.enqueuer_of(data.get("task_id"))
        if enqueuer is not None:
            data = {**data, "enqueued_by": enqueuer["label"], "enqueuer": enqueuer}
    return _with_links(data, url=None)


def _with_links(data: dict[str, Any], url: str | None) -> dict[str, Any]:
    """A summary with its links: its waterfall (``url``, None for another process's), its
    sends in the stream, what enqueued it and the runs of the tasks it enqueued, if here."""
    if data.get("kind") == "task":
        stream = {"task": data.get("task_id")}
    else:
        stream = {"process": f"{data.get('host')}:{data.get('pid')}", "kind": data.get("kind")}
        if data.get("path"):
            stream["path"] = data["path"]
    return {
        **data,
        "url": url,
        "remote": url is None,
        # What the Requests tab opens it by: this process's by id, another's by process too.
        "key": str(data["id"]) if url else f"{data['host']}:{data['pid']}:{data['id']}",
        "stream_url": f"{reverse('signal_dashboard:index')}?{urlencode(stream)}",
        "enqueued_by_id": _listed_here(data.get("enqueuer")),
        "enqueued": [_enqueued_task(task) for task in data.get("enqueued") or ()],
    }


def _listed_here(link: dict[str, Any] | None) -> int | None:
    """The id of the origin a task link names, if it is this process's and still listed."""
    if link is None or link["pid"] != PID or link["host"] != HOST:
        return None
    return link["id"] if any(o.id == link["id"] for o in list(recorder.requests)) else None


def _enqueued_task(task: dict[str, Any]) -> dict[str, Any]:
    """A task an origin enqueued, with where its sends are: its latest run listed here or by
    another process (``run_key``, as the Requests tab opens it), and the stream filtered to it
    (every process's, with Redis)."""
    task_id = task["task_id"]
    run = next((o for o in reversed(list(recorder.requests)) if o.task_id == task_id), None)
    if run is not None:
        run_key: str | None = str(run.id)
    else:
        try:
            published = backend().other_requests()
        except Exception:  # Redis cannot be read: no link to a run elsewhere
            published = []
        others = [data for data in published if data.get("task_id") == task_id]
        latest = max(others, key=lambda data: data.get("finished_at") or 0, default=None)
        run_key = None if latest is None else f"{latest['host']}:{latest['pid']}:{latest['id']}"
    return {
        **task,
        "run_key": run_key,
        "stream_url": f"{reverse('signal_dashboard:index')}?{urlencode({'task': task_id})}",
    }
