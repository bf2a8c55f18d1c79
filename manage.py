#!/usr/bin/env python3
"""Django's command-line utility for the demo site: ``python3 manage.py demo``."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv" / "demo"
REQUIRED = ("django", "daphne", "channels", "django_htmx", "django_tasks", "django_tasks_db")


def bootstrap() -> None:
    """Without the dependencies, install the project into .venv/demo and rerun there."""
    if all(importlib.util.find_spec(name) for name in REQUIRED):
        return
    if Path(sys.prefix).resolve() == VENV.resolve():
        sys.exit(f"{VENV} lacks some of {REQUIRED}; delete it and run this again.")
    python = VENV / ("Scripts" if os.name == "nt" else "bin") / "python"
    check = [python, "-c", f"import {', '.join(REQUIRED)}"]
    if not python.exists() or subprocess.run(check, stderr=subprocess.DEVNULL).returncode:
        print(f"First run: installing the project and its dependencies in {VENV}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run(
            [python, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[redis,demo]"], check=True
        )
    # Replace this process with the same command under the venv's Python.
    os.execv(python, [python, __file__, *sys.argv[1:]])


def main() -> None:
    bootstrap()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signal_dashboard.demo.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
