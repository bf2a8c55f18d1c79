"""Where code lives: whether a file belongs to the project, or to Python, Django or an installed
package (findings about code the project did not write are not the project's to fix)."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

import django

# Python's own library, the installed packages, and Django wherever it is installed from.
_INSTALLED = tuple(
    sorted(
        {
            str(Path(sysconfig.get_paths()[name]).resolve()) + os.sep
            for name in ("stdlib", "platstdlib", "purelib", "platlib")
        }
        | {str(Path(django.__file__).resolve().parent) + os.sep}
    )
)
_PACKAGE_DIRS = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")
# This package, wherever it is installed from (an editable install, a checkout), but for its
# demo, which is a project like any other.
_OURS = str(Path(__file__).resolve().parent.parent) + os.sep
_DEMO = f"{_OURS}demo{os.sep}"


def path_of(location: str) -> str:
    """The file of a ``file:line`` location (or of a bare path)."""
    path, _, line = location.rpartition(":")
    return path if path and line.isdigit() else location


def is_installed(location: str) -> bool:
    """Whether the file of ``location`` is Python's, Django's or an installed package's (a
    virtualenv's inside the project included, and signal_dashboard's own)."""
    path = path_of(location)
    if path.startswith("<frozen "):
        return True
    if not path or path.startswith("<"):  # code typed into a shell, or made by exec()
        return False
    resolved = str(Path(path).resolve())
    return (
        resolved.startswith(_INSTALLED)
        or any(part in resolved for part in _PACKAGE_DIRS)
        or _is_ours(resolved)
    )


def is_ours(location: str) -> bool:
    """Whether the file of ``location`` is signal_dashboard's own (its demo's is not): its
    receivers are never listed among a project's."""
    path = path_of(location)
    return bool(path) and not path.startswith("<") and _is_ours(str(Path(path).resolve()))


def _is_ours(resolved: str) -> bool:
    return resolved.startswith(_OURS) and not resolved.startswith(_DEMO)


def is_project_code(location: str) -> bool:
    """Whether ``location`` is known and not in code the project installed."""
    return bool(location) and not is_installed(location)
