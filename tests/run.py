#!/usr/bin/env python3
"""Lint, then run the test suite once per supported Python/Django pair, each in its own venv.

Each suite runs pytest, then some of Django's own tests (those of its dispatcher and signals)
with tracing installed: see tests/django_suite.py.

    python3 tests/run.py                        lint and every suite
    python3 tests/run.py --python 3.11          lint and one suite
    python3 tests/run.py -x tests/test_conf.py  other arguments (or all after --) go to pytest
    python3 tests/run.py --no-django-suite      pytest only
    python3 tests/run.py --django-suite auth_tests cache   these labels of Django's tests

Standard library only: on a fresh machine this is what installs everything else.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENVS = REPO / ".venv"
BIN = "Scripts" if os.name == "nt" else "bin"

# Debian packages the suites need, each with a command that tells it is installed.
# chromium: the browser tests drive it with Playwright (tests/browser.py).
# redis-server: the multi-process tests start their own on a free port (tests/redis_server.py);
# postgresql: the query tests start a cluster of their own (tests/postgres_server.py). The
# services Debian may start on installing them are never used.
SYSTEM_PACKAGES: dict[str, str] = {
    "chromium": "chromium",
    "redis-server": "redis-server",
    "postgresql": "pg_ctlcluster",
}


@dataclass(frozen=True)
class Suite:
    """One supported Django feature release, tested on the first interpreter found."""

    django: str  # "5.2"
    pythons: tuple[str, ...]  # acceptable Python versions, preferred first

    @property
    def name(self) -> str:
        return f"Django {self.django} suite"

    @property
    def requirement(self) -> str:
        major, minor = self.django.split(".")
        return f"Django>={self.django},<{major}.{int(minor) + 1}"

    @property
    def wanted_python(self) -> str:
        return f"Python {self.pythons[0]}" + ("+" if len(self.pythons) > 1 else "")


SUITES = (
    Suite(django="5.2", pythons=("3.11",)),
    Suite(django="6.1", pythons=("3.12", "3.13")),
)


class SetupError(Exception):
    """Something this script must install or create could not be."""


def say(message: str) -> None:
    print(message, flush=True)


def python_version(executable: str | Path) -> str | None:
    """The full version of the interpreter, or None if it does not run (pyenv shims may not)."""
    try:
        result = subprocess.run(
            [str(executable), "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _is_version(full_version: str | None, version: str) -> bool:
    return full_version is not None and full_version.split(".")[:2] == version.split(".")


def _release(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split("."))


def find_python(version: str) -> tuple[str, str] | None:
    """(executable, full version) of a working Python ``version``: this one, on PATH, or pyenv's."""
    candidates: list[str] = []
    if _is_version(platform.python_version(), version):
        candidates.append(sys.executable)
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(on_path)
    pyenv_versions = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    installs = [
        path
        for path in pyenv_versions.glob(f"{version}*/bin/python")
        if re.fullmatch(rf"{re.escape(version)}(\.\d+)?", path.parent.parent.name)
    ]
    installs.sort(key=lambda path: _release(path.parent.parent.name), reverse=True)
    candidates += [str(path) for path in installs]
    for candidate in candidates:
        full_version = python_version(candidate)
        if _is_version(full_version, version):
            return candidate, full_version
    return None


@functools.cache
def _apt_update(sudo: tuple[str, ...]) -> None:
    if subprocess.run([*sudo, "apt-get", "update"]).returncode != 0:
        raise SetupError("`apt-get update` failed")


def apt_install(packages: Sequence[str]) -> None:
    """Install Debian packages with apt-get (through sudo unless root)."""
    hint = f"install {' '.join(packages)} yourself and run again"
    if shutil.which("apt-get") is None:
        raise SetupError(f"apt-get is not available: {hint}")
    sudo: tuple[str, ...] = ()
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise SetupError(f"not root and sudo is not available: {hint}")
        # Without a terminal, fail at once rather than wait for a password nobody can type.
        sudo = ("sudo",) if sys.stdin.isatty() else ("sudo", "-n")
    say(f"==> Installing Debian packages: {' '.join(packages)}")
    _apt_update(sudo)
    command = [*sudo, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y"]
    if subprocess.run([*command, *packages]).returncode != 0:
        raise SetupError(f"`apt-get install {' '.join(packages)}` failed: {hint}")


def ensure_system_packages(packages: Mapping[str, str]) -> None:
    """Install the Debian packages (name: a command it provides) whose command is missing."""
    missing = [package for package, command in packages.items() if shutil.which(command) is None]
    if not missing:
        return
    apt_install(missing)
    still_missing = [
        packages[package] for package in missing if shutil.which(packages[package]) is None
    ]
    if still_missing:
        raise SetupError(f"installed, but still no command named: {' '.join(still_missing)}")


def _create_venv(python: str, version: str, venv: Path) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    if subprocess.run([python, "-m", "venv", str(venv)]).returncode == 0:
        return
    shutil.rmtree(venv, ignore_errors=True)
    if not Path(python).resolve().is_relative_to("/usr/bin"):
        raise SetupError(f"`{python} -m venv {venv}` failed")
    # Debian's own interpreters ship venv support in a package of its own.
    apt_install([f"python{version}-venv"])
    if subprocess.run([python, "-m", "venv", str(venv)]).returncode != 0:
        raise SetupError(f"`{python} -m venv {venv}` failed")


def prepare_venv(python: str, version: str, suite: Suite) -> Path:
    """Create (or reuse) .venv/pyX.Y and install the project, its test extra and the Django."""
    venv = VENVS / f"py{version}"
    venv_python = venv / BIN / "python"
    if not _is_version(python_version(venv_python), version):
        say(f"==> Creating {venv.relative_to(REPO)}")
        _create_venv(python, version, venv)
    say(f"==> Installing signal-dashboard[test] and {suite.requirement}")
    install = [venv_python, "-m", "pip", "install", "-q", "-e", ".[test]", suite.requirement]
    if subprocess.run(install, cwd=REPO).returncode != 0:
        raise SetupError(f"`pip install` into {venv.relative_to(REPO)} failed")
    return venv_python


def lint(venv_python: Path) -> list[tuple[bool, str]]:
    """Run ruff's linter and format check, and import-linter's contracts (pyproject.toml: the
    folders' order, no circles): (passed, summary line) for each."""
    commands = {
        "ruff check": [venv_python, "-m", "ruff", "check", "."],
        "ruff format": [venv_python, "-m", "ruff", "format", "--check", "."],
        "lint-imports": [venv_python.parent / "lint-imports", "--no-cache"],
    }
    results = []
    for label, command in commands.items():
        say(f"==> {label}")
        ok = subprocess.run(command, cwd=REPO).returncode == 0
        results.append((ok, f"{label}: {'passed' if ok else 'failed'}"))
    return results


def run_pytest(venv_python: Path, pytest_args: Sequence[str]) -> tuple[bool, str]:
    """Run pytest in the venv, its output straight to ours: (passed, summary line)."""
    versions = subprocess.run(
        [
            venv_python,
            "-c",
            "import django, platform; print(django.get_version(), platform.python_version())",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    label = f"Django {versions[0]} on Python {versions[1]}"
    say(f"==> pytest: {label}")
    # pyproject.toml names the settings; an exported DJANGO_SETTINGS_MODULE would win over it.
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    command = [venv_python, "-m", "pytest", *pytest_args]
    returncode = subprocess.run(command, cwd=REPO, env=env).returncode
    if returncode == 0:
        return True, f"{label}: passed"
    if returncode == 5:
        return False, f"{label}: failed (no tests ran)"
    return False, f"{label}: failed (pytest exit code {returncode})"


def _in_words(labels: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    *others, last = labels
    return f"{', '.join(others)} and {last}" if others else last


def run_django_suite(
    venv_python: Path, labels: Sequence[str], options: Sequence[str] = ()
) -> tuple[bool, str]:
    """Run Django's own tests with tracing installed (tests/django_suite.py): (passed, summary
    line)."""
    with tempfile.TemporaryDirectory() as folder:
        report_path = Path(folder) / "report.json"
        command = [venv_python, "tests/django_suite.py", *labels, *options]
        command += ["--report", report_path]
        say("==> Django's own tests, traced (tests/django_suite.py)")
        env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
        returncode = subprocess.run(command, cwd=REPO, env=env).returncode
        report = json.loads(report_path.read_text()) if report_path.exists() else None
    if report is None:
        return False, f"Django's own tests, traced: failed (exit code {returncode})"
    label = f"Django {report['django']}'s own {_in_words(report['labels'])} tests, traced"
    if report.get("detail_limit") is not None:
        label += f" with DETAIL_LIMIT={report['detail_limit']}"
    events, ignored = report["events"], report["ignored_exceptions"]
    recorded = f"{events} events recorded" if events else "no events recorded"
    if report.get("folded"):
        recorded += f", {report['folded']} sends folded"
    if returncode == 0:
        return True, f"{label}: passed ({recorded})"
    reasons = [] if report["passed"] else ["tests failed"]
    if ignored:
        reasons.append(f"ignored exceptions: {ignored}")
    return False, f"{label}: failed ({', '.join([*reasons, recorded])})"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tests/run.py",
        description="Lint, then run the tests once per supported Python/Django pair.",
        epilog="Any other arguments, and everything after --, are passed to pytest.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--python",
        metavar="X.Y",
        choices=[version for suite in SUITES for version in suite.pythons],
        help="run only the suite for this Python version",
    )
    parser.add_argument(
        "--no-lint", action="store_true", help="skip ruff check and format, and lint-imports"
    )
    django_suite = parser.add_mutually_exclusive_group()
    django_suite.add_argument(
        "--no-django-suite",
        action="store_true",
        help="skip the run of Django's own tests with tracing installed",
    )
    django_suite.add_argument(
        "--django-suite",
        nargs="+",
        metavar="LABEL",
        default=[],
        help="run these labels of Django's own tests with tracing installed, instead of "
        "those tests/django_suite.py runs by default",
    )
    if "--" in argv:
        cut = argv.index("--")
        args = parser.parse_args(argv[:cut])
        args.pytest_args = argv[cut + 1 :]
    else:
        args, pytest_args = parser.parse_known_args(argv)
        args.pytest_args = pytest_args
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        ensure_system_packages(SYSTEM_PACKAGES)
    except SetupError as error:
        say(f"error: {error}")
        return 1

    summary: list[str] = []
    failed = False
    passed = False
    lint_pending = not args.no_lint
    for suite in SUITES:
        if args.python is not None and args.python not in suite.pythons:
            continue
        pythons = suite.pythons if args.python is None else (args.python,)
        found = next(filter(None, (find_python(version) for version in pythons)), None)
        if found is None:
            wanted = suite.wanted_python if args.python is None else f"Python {args.python}"
            line = f"SKIPPED: {suite.name} (no {wanted} interpreter found)"
            say(line)
            summary.append(line)
            continue
        python, full_version = found
        version = ".".join(full_version.split(".")[:2])
        say(f"==> {suite.name}: Python {full_version} ({python})")
        try:
            venv_python = prepare_venv(python, version, suite)
        except SetupError as error:
            say(f"error: {error}")
            summary.append(f"{suite.name} on Python {full_version}: failed ({error})")
            failed = True
            continue
        if lint_pending:
            lint_pending = False
            for ok, line in lint(venv_python):
                failed |= not ok
                summary.append(line)
        ok, line = run_pytest(venv_python, args.pytest_args)
        passed |= ok
        failed |= not ok
        summary.append(line)
        if not args.no_django_suite:
            # In full detail, then with every send past DETAIL_LIMIT (folded unless an outlier).
            for options in ((), ("--detail-limit", "0")):
                ok, line = run_django_suite(venv_python, args.django_suite, options)
                failed |= not ok
                summary.append(line)

    if not passed and not failed:
        summary.append("No suite ran.")
    say("\n==> Summary")
    for line in summary:
        say(line)
    return 0 if passed and not failed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
