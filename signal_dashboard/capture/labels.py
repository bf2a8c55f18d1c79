"""What names a signal, a sender or a receiver: handles that hold signals and sender classes
weakly, and the labels the dashboard shows."""

from __future__ import annotations

import ast
import functools
import sys
import tokenize
import weakref
from collections.abc import Mapping
from types import CodeType, FunctionType
from typing import Any

from django.dispatch import Signal
from django.utils.module_loading import import_string


class OpaqueSender:
    """Stands in for a sender the event must not keep alive."""

    __slots__ = ("label",)

    def __init__(self, label: str) -> None:
        self.label = label


def receiver_key(receiver: Any) -> Any:
    """What an event keeps to name a receiver: its code object, never the receiver itself.

    Keeping the receiver would hold weakly connected receivers alive. Bound methods expose
    their function's ``__code__``; a function behind a decorator (its code one of
    ``WRAPPER_CODES``) is named by the function it wraps; for other callables, see
    :func:`callable_key`.
    """
    code = getattr(receiver, "__code__", None)
    if code is None:
        return callable_key(receiver)
    if WRAPPER_CODES and id(code) in WRAPPER_CODES:
        return wrapped_code(receiver)
    return code


# The code of decorators' wrappers (by id; the code kept, so that its id stays its own): one
# code object that many receivers share, each wrapping a function of its own. Noted as they
# are connected (note_receiver()), so that the send path asks only for the codes here.
WRAPPER_CODES: dict[int, CodeType] = {}


# Wrappers without functools.wraps seen so far, by id of their code: the id of the first
# function seen with it. A second function with the same code makes it a wrapper's.
_CLOSURES: dict[int, tuple[CodeType, int]] = {}


def note_receiver(receiver: Any) -> Any:
    """The key of a receiver being connected (or listed), noting first whether it is a
    decorator's wrapper: one made with functools.wraps, or functions that share their code and
    each hold another function in their closure."""
    function = getattr(receiver, "__func__", receiver)
    code = getattr(function, "__code__", None)
    if code is not None and id(code) not in WRAPPER_CODES and _wrapped(function) is not None:
        if getattr(function, "__wrapped__", None) is not None:
            WRAPPER_CODES[id(code)] = code
        else:
            seen = _CLOSURES.setdefault(id(code), (code, id(function)))
            if seen[0] is code and seen[1] != id(function):
                WRAPPER_CODES[id(code)] = code
    return receiver_key(receiver)


def wrapped_code(receiver: Any) -> CodeType:
    """The code of the function a person wrote, behind the decorators' wrappers around it."""
    function = getattr(receiver, "__func__", receiver)
    for _ in range(_MAX_WRAPPERS):
        inner = _wrapped(function)
        if inner is None:
            break
        function = inner
    return function.__code__


_MAX_WRAPPERS = 20


def _wrapped(function: Any) -> Any:
    """The function a wrapper wraps (functools.wraps' ``__wrapped__``, or the one function its
    closure holds), or None if it wraps none."""
    inner = getattr(function, "__wrapped__", None)
    if inner is not None:
        inner = getattr(inner, "__func__", inner)
        return inner if getattr(inner, "__code__", None) is not None else None
    held = []
    for cell in getattr(function, "__closure__", None) or ():
        try:
            content = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if isinstance(content, FunctionType):
            held.append(content)
    return held[0] if len(held) == 1 else None


def callable_key(receiver: Any) -> Any:
    """The key of a receiver that is not a function: a ``functools.partial`` is named by what
    it wraps, a callable object by its class's ``__call__`` (a code object, which keeps no class
    alive); anything else by its type."""
    if isinstance(receiver, functools.partial):
        return receiver_key(receiver.func)
    code = getattr(getattr(type(receiver), "__call__", None), "__code__", None)  # noqa: B004
    return code if code is not None else type(receiver)


# One handle per live signal or sender class, by id(); a handle leaves when its object dies.
HANDLES: dict[int, Handle] = {}


class Handle(weakref.ref):  # type: ignore[type-arg]
    """Names a signal or a sender class without keeping it alive: a weak reference to it and
    its label, which outlives it.

    Django promises that sending does not keep a sender alive, so events and statistics hold
    these, never the object. One handle per live object (see :func:`handle_of`); equal only to
    itself, so a class made again at the same address is another key.
    """

    __slots__ = ("_label", "ident", "kind")
    __hash__ = object.__hash__
    __eq__ = object.__eq__

    def __new__(cls, obj: Any, label: str | None) -> Handle:
        return super().__new__(cls, obj, _forget)

    def __init__(self, obj: Any, label: str | None) -> None:
        super().__init__(obj, _forget)
        self._label = label  # a signal's is found when first read (it searches the modules)
        self.ident = id(obj)
        self.kind = type(obj).__qualname__

    @property
    def label(self) -> str:
        label = self._label
        if label is None:
            obj = self()
            found = None if obj is None else _find_signal_path(obj)
            label = self._label = found or f"{self.kind}@{self.ident:#x}"
        return label


def _forget(handle: Handle, handles: dict[int, Handle] = HANDLES) -> None:
    # The dict is bound here: at interpreter exit, this module's globals may be gone first.
    if handles.get(handle.ident) is handle:
        handles.pop(handle.ident, None)


def new_handle(obj: Any, label: str | None) -> Handle:
    handle = HANDLES[id(obj)] = Handle(obj, label)
    return handle


def handle_of(obj: Any) -> Handle:
    """The handle of a signal or a class (made on first use)."""
    handle = HANDLES.get(id(obj))
    if handle is None or handle() is not obj:
        handle = new_handle(obj, sender_label(obj) if isinstance(obj, type) else None)
    return handle


def key_label(key: Any) -> str:
    """The label of what an event or the statistics keep for a sender or a signal."""
    if type(key) is Handle or type(key) is OpaqueSender:
        return key.label
    return sender_label(key)


_module_by_file: dict[str, str] = {}
_MAX_LABEL = 200


def signal_label(signal: Signal) -> str:
    """Dotted path of the module attribute that holds the signal, e.g.
    ``django.db.models.signals.post_save``."""
    return handle_of(signal).label


class NotASignal(TypeError):
    """A dotted path that names something other than a Signal."""


def signal_at(path: str) -> Signal:
    """The signal a dotted path names, such as ``django.db.models.signals.post_init``.

    Raises ImportError if the path does not import (or whatever its module raises as it is
    imported), and NotASignal if it names anything but a Signal.
    """
    found = import_string(path)
    if not isinstance(found, Signal):
        raise NotASignal(f"{path!r} names a {type(found).__qualname__}, not a Signal.")
    return found


def _find_signal_path(signal: Signal) -> str | None:
    """The dotted path of the module attribute that holds ``signal``, preferring the module
    that defines it: a signal is imported into many modules (``blog/signals.py`` importing
    ``post_save``), and is named by the one that assigns it (``post_save = ModelSignal(...)``).
    Among the rest, a module named "signals" first, then the shortest path."""
    candidates = []
    for module_name, module in list(sys.modules.items()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        in_signals_module = module_name.rpartition(".")[2] == "signals"
        for name, value in list(namespace.items()):
            if value is signal:
                candidates.append((module, in_signals_module, module_name, name))
    if not candidates:
        return None
    _, _, module_name, name = min(
        candidates,
        key=lambda found: (
            found[3] not in _assigned_names(found[0]),
            not found[1],
            len(found[2]),
            found[2],
        ),
    )
    return f"{module_name}.{name}"


_assigned: dict[str, frozenset[str]] = {}


def _assigned_names(module: Any) -> frozenset[str]:
    """The names a module's source assigns at its top level (read once per file), none if its
    source cannot be read."""
    path = getattr(module, "__file__", None)
    if not isinstance(path, str) or not path.endswith(".py"):
        return frozenset()
    names = _assigned.get(path)
    if names is None:
        try:
            with tokenize.open(path) as source:
                tree = ast.parse(source.read(), path)
        except (OSError, SyntaxError, ValueError):
            tree = ast.Module(body=[], type_ignores=[])
        targets = []
        for node in tree.body:
            if isinstance(node, ast.Assign):
                targets += node.targets
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                targets.append(node.target)
        names = _assigned[path] = frozenset(
            element.id
            for target in targets
            for element in (target.elts if isinstance(target, ast.Tuple) else [target])
            if isinstance(element, ast.Name)
        )
    return names


def sender_label(sender: Any) -> str:
    """``app_label.Model`` for models, a dotted path for other classes, bounded text otherwise."""
    if sender is None:
        return "None"
    if isinstance(sender, str):
        return sender[:_MAX_LABEL]
    if isinstance(sender, type):
        meta = sender.__dict__.get("_meta")
        label = getattr(meta, "label", None)
        if isinstance(label, str):
            return label
        return f"{sender.__module__}.{sender.__qualname__}"
    if type(sender) in (int, float, bool):
        return str(sender)
    kind = type(sender)
    return f"<{kind.__module__}.{kind.__qualname__} instance>"


def last_part(label: str | None) -> str:
    """The last part of a dotted label: a signal's own name, ``post_save``."""
    if not label:
        return ""
    return label.rpartition(".")[2]


def short_label(label: str | None) -> str:
    """The last two parts of a dotted label: ``signals.post_save``, ``receivers.on_save``."""
    if not label:
        return ""
    if label.startswith("<") and label.endswith(">"):  # "<myapp.backends.Backend instance>"
        return f"<{short_label(label[1:-1])}>"
    return ".".join(label.rsplit(".", 2)[-2:])


def origin_label(origin: Mapping[str, Any]) -> str:
    """What caused a send, as the dashboard names it (from ``Origin.as_dict()`` or a request
    summary): ``GET /pizzas/`` for a request, ``command migrate`` or ``process manage.py``."""
    if origin["kind"] == "request":
        return f"{origin['method']} {origin['path']}"
    return f"{origin['kind']} {origin['name']}"


# id(key) -> (a weak reference to the key, its label and location): the label of a class, or
# of a function's code, made again, is found again, and the cache keeps neither alive.
_receiver_labels: dict[int, tuple[weakref.ReferenceType[Any], tuple[str, str]]] = {}


def receiver_label(key: Any) -> tuple[str, str]:
    """(``module.qualname``, ``file:line``) for a key made by :func:`receiver_key`."""
    cached = _receiver_labels.get(id(key))
    if cached is not None and cached[0]() is key:
        return cached[1]
    if isinstance(key, CodeType):
        module = _module_for_file(key.co_filename)
        # A callable object's key is its class's __call__ (see callable_key()): named by class.
        name = key.co_qualname.removesuffix(".__call__")
        label = f"{module}.{name}" if module else name
        result = (label, f"{key.co_filename}:{key.co_firstlineno}")
    else:
        result = (f"{key.__module__}.{key.__qualname__}", _class_location(key))
    try:
        reference = weakref.ReferenceType(key, functools.partial(_forget_label, id(key)))
    except TypeError:  # not weakly referenceable: named again each time
        return result
    _receiver_labels[id(key)] = (reference, result)
    return result


def _forget_label(
    ident: int,
    reference: weakref.ReferenceType[Any],
    labels: dict[int, tuple[weakref.ReferenceType[Any], tuple[str, str]]] = _receiver_labels,
) -> None:
    entry = labels.get(ident)
    if entry is not None and entry[0] is reference:
        labels.pop(ident, None)


def _module_for_file(filename: str) -> str:
    if filename not in _module_by_file:
        for name, module in list(sys.modules.items()):
            if getattr(module, "__file__", None) == filename:
                _module_by_file[filename] = name
                break
        else:
            return ""
    return _module_by_file[filename]


def _class_location(kind: type) -> str:
    call = getattr(kind, "__call__", None)  # noqa: B004  (the callable's own code, if Python)
    code = getattr(call, "__code__", None)
    if code is None:
        return ""
    return f"{code.co_filename}:{code.co_firstlineno}"
