"""Safe, bounded, redacted summaries of the values a signal is sent with.

This runs on every signal send, so it never runs the code of the values it summarizes: no
``repr()``/``str()`` of user objects, no iteration of arbitrary iterables, no attribute that could
load a deferred field or evaluate a QuerySet. Types are dispatched on ``type(value)`` (never
``isinstance``, which would read ``value.__class__``: a ``SimpleLazyObject`` evaluates itself for
that). Whatever is not handled below is shown by its type name alone, e.g. ``"<myapp.Thing>"``.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import functools
import inspect
import itertools
import json
import math
import re
import types
import uuid
import weakref
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.signals import setting_changed
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model
from django.db.models.manager import BaseManager
from django.db.models.query import QuerySet, RawQuerySet
from django.http import HttpRequest
from django.template.base import Template
from django.template.context import BaseContext
from django.utils.connection import ConnectionProxy
from django.utils.functional import LazyObject, Promise, empty
from django.views.debug import SafeExceptionReporterFilter

_Handler = Callable[[Any, "Limits", int], Any]

# How many values summarize_kwargs() could not summarize; the tracer reports it. An increment lost
# to a thread race only understates a diagnostic count, so it takes no lock.
failures = 0

_PRIMITIVES = frozenset({type(None), bool, int, float})
# Larger ints may have more digits than json.dumps will write, and inf and nan are not JSON.
_MIN_NUMBER, _MAX_NUMBER = -1e300, 1e300

# The keys of a WSGI environ and of an ASGI scope that carry no headers, cookies or query string.
_ENVIRON_KEYS = (
    "REQUEST_METHOD",
    "PATH_INFO",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "wsgi.url_scheme",
)
_SCOPE_KEYS = ("type", "method", "path", "scheme", "http_version")
_REQUEST_DICT_KEYS = {"environ": _ENVIRON_KEYS, "scope": _SCOPE_KEYS}

# Every template Context starts with these; they are noise in a list of variable names.
_CONTEXT_BUILTINS = frozenset({"True", "False", "None"})

# The dict key that says how many items a summary left out.
_MORE = "…"

# Keys whose values are masked: those Django's error reports hide, and the session, its cookies and
# the CSRF token, which are worth as much as a password to whoever reads the dashboard.
SENSITIVE_KEYS = re.compile(
    "|".join([SafeExceptionReporterFilter.hidden_settings.pattern, "SESSION|COOKIE|CSRF"]),
    SafeExceptionReporterFilter.hidden_settings.flags | re.IGNORECASE,
)

# Bounds of the per-Limits memo of which keys are sensitive.
_MEMO_KEY_LENGTH = 100
_MEMO_SIZE = 4096


@dataclass(frozen=True)
class Limits:
    """How much of a value a summary may show, and which keys' values it must mask."""

    max_string: int = 200
    max_items: int = 20
    max_depth: int = 3
    mask: str = "********************"
    sensitive: re.Pattern[str] = SENSITIVE_KEYS
    # The case-insensitive search costs about a microsecond, and the same keys come up every send.
    _masked_keys: dict[str, bool] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Limits:
        """Build the limits from ``conf.get_config()``; the SENSITIVE_KEYS setting extends
        :data:`SENSITIVE_KEYS`."""
        extra = config["SENSITIVE_KEYS"]
        if isinstance(extra, str):  # one name, not a sequence of one-letter names
            extra = (extra,)
        # Empty names are dropped: an empty alternative would match, and mask, every key.
        pattern = "|".join([SENSITIVE_KEYS.pattern, *(re.escape(name) for name in extra if name)])
        return cls(
            max_string=config["MAX_STRING_LENGTH"],
            max_items=config["MAX_ITEMS"],
            max_depth=config["MAX_DEPTH"],
            mask=config["MASK"],
            sensitive=re.compile(pattern, SENSITIVE_KEYS.flags),
        )

    def is_sensitive(self, key: str) -> bool:
        """Whether the value stored under ``key`` must be masked."""
        masked = self._masked_keys.get(key)
        if masked is None:
            masked = self.sensitive.search(key) is not None
            if len(key) <= _MEMO_KEY_LENGTH and len(self._masked_keys) < _MEMO_SIZE:
                self._masked_keys[key] = masked
        return masked


def summarize_kwargs(signal: object, named: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """Summarize the keyword arguments of one send; never raises because of a value."""
    global failures
    summary: dict[str, Any] = {}
    for name, value in named.items():
        key = name if len(name) <= limits.max_string else _truncate(name, limits)
        try:
            if limits.is_sensitive(name) or (signal is setting_changed and name == "value"):
                summary[key] = limits.mask
            elif name in _REQUEST_DICT_KEYS and type(value) is dict:
                summary[key] = _pick(value, _REQUEST_DICT_KEYS[name], limits, 0)
            else:
                summary[key] = summarize(value, limits)
        except Exception:
            failures += 1
            summary[key] = f"<unrepresentable: {type(value).__qualname__}>"
    return summary


def summarize(value: Any, limits: Limits, depth: int = 0) -> Any:
    """Return a JSON-serialisable summary of ``value``; may raise on a broken object."""
    kind = type(value)
    if kind in _PRIMITIVES:
        # NaN fails both comparisons, so this one test also catches nan and the infinities.
        if value is None or _MIN_NUMBER < value < _MAX_NUMBER:
            return value
        return _unusual_number(value)
    if kind is str:
        return value if len(value) <= limits.max_string else _truncate(value, limits)
    handler = _BY_EXACT_TYPE.get(kind) or _handler_for(kind)
    return handler(value, limits, depth)


def _text(value: str, limits: Limits) -> str:
    return value if len(value) <= limits.max_string else _truncate(value, limits)


def _truncate(value: str, limits: Limits) -> str:
    return f"{value[: limits.max_string]}…(+{len(value) - limits.max_string} chars)"


def _unusual_number(value: float) -> Any:
    if type(value) is int:
        return f"<int: {value.bit_length()} bits>"
    return value if math.isfinite(value) else repr(value)


def _name(obj: Any) -> str:
    """``module.Qualname`` of a class or function; builtins by their bare name."""
    module, qualname = obj.__module__, obj.__qualname__
    if type(module) is not str or module == "builtins":
        return qualname
    return f"{module}.{qualname}"


def _type_name(value: Any, limits: Limits, depth: int) -> str:
    return f"<{_name(type(value))}>"


def _dict(value: dict[Any, Any], limits: Limits, depth: int) -> Any:
    if depth >= limits.max_depth:
        return f"<{type(value).__name__}: {len(value)} items>"
    # A request dict that was not sent under its usual name is recognised by its contents.
    if "wsgi.version" in value:
        return _pick(value, _ENVIRON_KEYS, limits, depth)
    kind = value.get("type")
    if type(kind) is str and kind in ("http", "websocket") and "asgi" in value:
        return _pick(value, _SCOPE_KEYS, limits, depth)
    summary: dict[str, Any] = {}
    for key, item in itertools.islice(value.items(), limits.max_items):
        name = key if type(key) is str else _key_name(key, limits, depth)
        # Matched before truncation, so a long key cannot push the sensitive part out of sight.
        masked = limits.is_sensitive(name)
        summary[_text(name, limits)] = limits.mask if masked else summarize(item, limits, depth + 1)
    if len(value) > limits.max_items:
        summary[_MORE] = f"+{len(value) - limits.max_items} items"
    return summary


def _key_name(key: Any, limits: Limits, depth: int) -> str:
    # JSON keys are strings; a key's own summary, as JSON, keeps distinct keys apart.
    summary = summarize(key, limits, depth + 1)
    return summary if type(summary) is str else json.dumps(summary, ensure_ascii=False)


def _pick(value: dict[str, Any], keys: tuple[str, ...], limits: Limits, depth: int) -> Any:
    # SENSITIVE_KEYS may name one of these keys too.
    return {
        key: limits.mask if limits.is_sensitive(key) else summarize(value[key], limits, depth + 1)
        for key in keys
        if key in value
    }


def _collection(value: list[Any] | tuple[Any, ...] | set[Any], limits: Limits, depth: int) -> Any:
    if depth >= limits.max_depth:
        return f"<{type(value).__name__}: {len(value)} items>"
    items = itertools.islice(value, limits.max_items)
    return _bounded([summarize(item, limits, depth + 1) for item in items], len(value), limits)


def _bounded(items: list[Any], total: int, limits: Limits) -> list[Any]:
    if total > limits.max_items:
        items.append(f"{_MORE}(+{total - limits.max_items} items)")
    return items


def _bytes(value: bytes | bytearray, limits: Limits, depth: int) -> str:
    return f"<{type(value).__name__}: {len(value)}>"


def _isoformat(value: datetime.date | datetime.time, limits: Limits, depth: int) -> str:
    return value.isoformat()


def _stdlib_str(
    value: datetime.timedelta | uuid.UUID | decimal.Decimal, limits: Limits, depth: int
) -> str:
    return _text(str(value), limits)


def _function(value: Any, limits: Limits, depth: int) -> str:
    return _name(value)


def _method(value: types.MethodType, limits: Limits, depth: int) -> str:
    function = value.__func__
    return _name(function) if type(function) is types.FunctionType else "<method>"


def _model_instance(value: Model, limits: Limits, depth: int) -> dict[str, Any]:
    meta = type(value)._meta
    # Read from the instance dict: attribute access would load a deferred field from the database.
    state = value.__dict__
    if getattr(meta, "is_composite_pk", False):  # Django 5.2+
        pk: Any = [state.get(part.attname) for part in meta.pk_fields]
    else:
        pk = state.get(meta.pk.attname)
    return {"model": meta.label, "pk": summarize(pk, limits, depth + 1)}


def _model_label(model: type[Model] | None) -> str | None:
    return None if model is None else model._meta.label


def _queryset(value: QuerySet[Any] | RawQuerySet[Any], limits: Limits, depth: int) -> Any:
    return {"queryset": _model_label(value.model)}


def _manager(value: BaseManager[Any], limits: Limits, depth: int) -> Any:
    return {"manager": _model_label(value.model)}


def _class(value: type, limits: Limits, depth: int) -> str:
    # models.Model itself, unlike every model class, has no _meta.
    meta = getattr(value, "_meta", None) if issubclass(value, Model) else None
    return _name(value) if meta is None else meta.label


def _request(value: HttpRequest, limits: Limits, depth: int) -> dict[str, Any]:
    return {
        "method": summarize(value.method, limits, depth + 1),
        "path": summarize(value.path, limits, depth + 1),
    }


def _template_context(value: BaseContext, limits: Limits, depth: int) -> dict[str, Any]:
    # Names only: the values are often lazy QuerySets, and are the view's data anyway.
    names: set[str] = set()
    for layer in value.dicts:
        if issubclass(type(layer), dict):
            keys = dict.keys(layer)  # the stored keys, whatever a subclass does to iteration
            names.update(key if type(key) is str else _key_name(key, limits, depth) for key in keys)
        else:
            names.add(f"<{_name(type(layer))}>")
    ordered = sorted(names - _CONTEXT_BUILTINS)
    shown = [_text(name, limits) for name in ordered[: limits.max_items]]
    return {"variables": _bounded(shown, len(ordered), limits)}


def _template(value: Template, limits: Limits, depth: int) -> dict[str, Any]:
    return {"template": summarize(value.name, limits, depth + 1)}


def _connection(value: BaseDatabaseWrapper, limits: Limits, depth: int) -> dict[str, Any]:
    # Never settings_dict: it holds the database password.
    return {
        "alias": summarize(value.alias, limits, depth + 1),
        "vendor": summarize(value.vendor, limits, depth + 1),
    }


def _connection_proxy(value: ConnectionProxy, limits: Limits, depth: int) -> Any:
    # django.db.connection: look up the wrapper it stands for, as any attribute access would.
    return _connection(value._connections[value._alias], limits, depth)


def _lazy_string(value: Promise, limits: Limits, depth: int) -> str:
    # Not evaluated: that would run gettext (or whatever was made lazy) on every send.
    return "<lazy str>"


def _lazy_object(value: LazyObject, limits: Limits, depth: int) -> Any:
    # request.user is one of these: show it once evaluated, but never be the one to evaluate it.
    wrapped = value._wrapped
    return "<lazy object>" if wrapped is empty else summarize(wrapped, limits, depth + 1)


def _exception(value: BaseException, limits: Limits, depth: int) -> dict[str, str]:
    # No message: str() of an exception runs its __str__.
    return {"exception": _name(type(value))}


def _enum_member(value: enum.Enum, limits: Limits, depth: int) -> str:
    name = value._name_
    return f"{_name(type(value))}.{name}" if type(name) is str else f"<{_name(type(value))}>"


def _str_subclass(value: str, limits: Limits, depth: int) -> str:
    # str.__str__ copies the characters into a plain str without calling any override.
    return _text(str.__str__(value), limits)


_BY_EXACT_TYPE: dict[type, _Handler] = {
    dict: _dict,
    # These two keep their items in the dict itself, so walking it is walking them.
    OrderedDict: _dict,
    defaultdict: _dict,
    list: _collection,
    tuple: _collection,
    set: _collection,
    frozenset: _collection,
    bytes: _bytes,
    bytearray: _bytes,
    datetime.datetime: _isoformat,
    datetime.date: _isoformat,
    datetime.time: _isoformat,
    datetime.timedelta: _stdlib_str,
    uuid.UUID: _stdlib_str,
    decimal.Decimal: _stdlib_str,
    types.FunctionType: _function,
    types.BuiltinFunctionType: _function,
    types.MethodType: _method,
}

# Checked in order; the first base class that matches decides.
_BY_BASE_TYPE: tuple[tuple[type, _Handler], ...] = (
    (Model, _model_instance),
    (QuerySet, _queryset),
    (RawQuerySet, _queryset),
    (BaseManager, _manager),
    (type, _class),
    (HttpRequest, _request),
    (BaseContext, _template_context),
    (Template, _template),
    (BaseDatabaseWrapper, _connection),
    (ConnectionProxy, _connection_proxy),
    (Promise, _lazy_string),
    (LazyObject, _lazy_object),
    (BaseException, _exception),
    (enum.Enum, _enum_member),
    (str, _str_subclass),
)


# Task results of Django's tasks framework and of its backport, known by name: neither module
# need be importable.
_TASK_RESULTS = frozenset(
    {("django.tasks.base", "TaskResult"), ("django_tasks.base", "TaskResult")}
)


def _task_result(value: Any, limits: Limits, depth: int) -> dict[str, Any]:
    """A task result: its task, id and status, and its arguments by parameter name, each
    masked as a keyword argument of that name would be. Read from its fields only (its return
    value raises until the task finished)."""
    task = getattr(value, "task", None)
    function = getattr(task, "func", None)
    status = getattr(value, "status", None)
    args = getattr(value, "args", None) or []
    kwargs = getattr(value, "kwargs", None) or {}
    names = _parameters(function, bool(getattr(task, "takes_context", False)))
    named = dict(zip(names, args, strict=False))
    unnamed = list(args[len(named) :])
    if type(kwargs) is dict:
        named.update(kwargs)
    summary = {
        "task": _name(function) if function is not None else f"<{_name(type(task))}>",
        "id": summarize(getattr(value, "id", None), limits, depth + 1),
        "status": None if status is None else str(getattr(status, "value", status)),
        "arguments": _dict(named, limits, depth + 1),
    }
    if unnamed:
        summary["more_arguments"] = _collection(unnamed, limits, depth + 1)
    return summary


def _parameters(function: Any, takes_context: bool) -> tuple[str, ...]:
    """The names a task function's positional arguments bind to (none if unknown); a task
    that takes its context is called with it first, before its arguments."""
    code = getattr(function, "__code__", None)
    names = _parameter_names.get(code) if code is not None else None
    if names is None:
        try:
            parameters = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):
            return ()
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        names = tuple(parameter.name for parameter in parameters if parameter.kind in positional)
        if code is not None:
            _parameter_names[code] = names
    return names[1:] if takes_context else names


# Code object of a task function -> its positional parameters' names (held weakly).
_parameter_names: weakref.WeakKeyDictionary[Any, tuple[str, ...]] = weakref.WeakKeyDictionary()


@functools.lru_cache(maxsize=512)  # bounded: classes made at runtime must not pile up here
def _handler_for(kind: type) -> _Handler:
    for base, handler in _BY_BASE_TYPE:
        if issubclass(kind, base):
            return handler
    if any((base.__module__, base.__qualname__) in _TASK_RESULTS for base in kind.__mro__):
        return _task_result
    return _type_name
