"""Run Django's own tests with every signal send traced.

Django's tests of its dispatcher and of its signals say how a send must behave; with tracing
installed for the whole run they must still pass, and tracing must have recorded their sends.
The tests come from the source distribution of the Django installed next to this interpreter,
which pip downloads once into .venv/django-src/<version>/; Django's tests/runtests.py runs them
in this process, against that installed Django, after tracing is installed.

    .venv/py3.11/bin/python tests/django_suite.py                       the default labels
    .venv/py3.11/bin/python tests/django_suite.py auth_tests cache      these labels instead
    .venv/py3.11/bin/python tests/django_suite.py --untraced dispatch   the same, not traced
    .venv/py3.11/bin/python tests/django_suite.py cache -- --parallel 2 runtests.py's options
    .venv/py3.11/bin/python tests/django_suite.py --all -- --parallel 2 every test
    .venv/py3.11/bin/python tests/django_suite.py --detail-limit 0      sends folded

Tests run in one process unless runtests.py is given ``--parallel``; its workers are then
forked, so that they inherit tracing and add to the same count of recorded events.
Exits non-zero if a test failed, if Python ignored an exception it could only print (a weakref
callback's, say), or if tracing recorded no event.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import runpy
import subprocess
import sys
import tarfile
import tempfile
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import TYPE_CHECKING, Any

import django

if TYPE_CHECKING:
    from sys import UnraisableHookArgs

REPO = Path(__file__).resolve().parent.parent
SOURCES = REPO / ".venv" / "django-src"

# Django's tests of Signal itself, of the signals Django sends and of override_settings. Among
# them, dispatch checks that a sender used once can be garbage-collected, and settings_tests that
# a setting_changed receiver's warning (stacklevel=5) points at the override_settings line, which
# a frame added between send() and its receivers would move; invalid_models_tests that a
# pending model-signal connect() is recognised by the name and module of Signal.connect().
# queries, transactions, select_for_update and test_utils check that the queries receivers
# make are run, captured (assertNumQueries, CaptureQueriesContext) and logged as untraced.
DEFAULT_LABELS = (
    "dispatch",
    "signals",
    "settings_tests",
    "invalid_models_tests",
    "queries",
    "transactions",
    "select_for_update",
    "test_utils",
    # Django 6's tasks framework: task_enqueued, task_started and task_finished are origins.
    *(("tasks",) if django.VERSION >= (6, 0) else ()),
)


def say(message: str) -> None:
    print(message, flush=True)


def django_tests_dir(version: str) -> Path:
    """Django ``version``'s tests folder, from its source distribution (downloaded once)."""
    cache = SOURCES / version
    found = sorted(cache.glob("*/tests/runtests.py"))
    if found:
        return found[0].parent
    cache.mkdir(parents=True, exist_ok=True)
    archives = sorted(cache.glob("*.tar.gz"))
    if not archives:
        say(f"==> Downloading Django {version}'s source distribution")
        download = [sys.executable, "-m", "pip", "download", "-q", "--no-deps"]
        download += ["--no-binary", ":all:", "--dest", str(cache), f"django=={version}"]
        if subprocess.run(download).returncode != 0:
            sys.exit(f"error: pip could not download Django {version}'s source distribution")
        archives = sorted(cache.glob("*.tar.gz"))
    say(f"==> Extracting {archives[0].relative_to(REPO)}")
    # Into a temporary folder first: a run interrupted halfway leaves nothing that looks done.
    with tempfile.TemporaryDirectory(dir=cache) as partial, tarfile.open(archives[0]) as archive:
        # The "data" filter refuses links and paths out of the folder (Python 3.11.4 and later).
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        archive.extractall(partial, **safe)
        [top] = Path(partial).iterdir()
        top.rename(cache / top.name)
    return cache / top.name / "tests"


class SharedCount:
    """A count that forked test workers add to."""

    def __init__(self) -> None:
        self._value: Synchronized[int] = multiprocessing.Value("Q", 0)  # type: ignore[assignment]

    def add(self, count: int = 1) -> None:
        with self._value.get_lock():
            self._value.value += count

    @property
    def value(self) -> int:
        return self._value.value


def count_ignored_exceptions() -> SharedCount:
    """Count the exceptions Python can only print ("Exception ignored in ..."), such as a weakref
    callback's: they fail no test."""
    ignored = SharedCount()
    default = sys.unraisablehook

    def hook(unraisable: UnraisableHookArgs) -> None:
        ignored.add()
        default(unraisable)

    sys.unraisablehook = hook
    return ignored


def _drain_before_exiting() -> None:
    from multiprocessing.util import Finalize

    from signal_dashboard.record.recorder import recorder

    # A forked test worker exits through multiprocessing's finalizers: count its last sends.
    Finalize(None, recorder.drain, exitpriority=0)


def install_tracing(detail_limit: int | None) -> tuple[SharedCount, SharedCount]:
    """Install tracing (with this DETAIL_LIMIT), and count every event it records and every
    send it folds, in this process and in forked ones."""
    from signal_dashboard import conf, tracing
    from signal_dashboard.record.recorder import recorder

    # Django's test settings have no SIGNAL_DASHBOARD: the defaults are what tracing reads.
    conf.DEFAULTS["DETAIL_LIMIT"] = detail_limit
    tracing.install()
    recorded, folded = SharedCount(), SharedCount()
    recorder.subscribe(lambda event: recorded.add())

    def count_folded(tally: Any, sends: Any, receivers: Any) -> None:
        folded.add(sends.count)

    recorder.subscribe_folded(count_folded)
    os.register_at_fork(after_in_child=_drain_before_exiting)
    return recorded, folded


def run_django_tests(tests_dir: Path, runtests_args: list[str]) -> bool:
    """Run Django's runtests.py in this process as if it were run from ``tests_dir``."""
    runtests = tests_dir / "runtests.py"
    # Django's test apps are top-level packages of its tests folder, so it replaces the folder of
    # this script at the head of the path, as running runtests.py itself would.
    sys.path[0] = str(tests_dir)
    sys.argv = [str(runtests), *runtests_args]
    os.chdir(tests_dir)
    try:
        runpy.run_path(str(runtests), run_name="__main__")
    except SystemExit as stopped:
        return stopped.code in (None, 0)
    return True


def _parallel(runtests_args: list[str]) -> bool:
    for index, arg in enumerate(runtests_args):
        if arg.startswith("--parallel="):
            return arg != "--parallel=1"
        if arg == "--parallel":
            return runtests_args[index + 1 : index + 2] != ["1"]
    return False


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tests/django_suite.py",
        description="Run Django's own tests with signal_dashboard's tracing installed.",
        epilog="Arguments after -- go to Django's tests/runtests.py.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "labels",
        nargs="*",
        metavar="LABEL",
        help=f"Django test labels (default: {' '.join(DEFAULT_LABELS)})",
    )
    parser.add_argument(
        "--all", action="store_true", help="run every test of Django's suite (many minutes)"
    )
    parser.add_argument("--untraced", action="store_true", help="run without tracing")
    parser.add_argument(
        "--detail-limit",
        type=int,
        metavar="N",
        help="trace with DETAIL_LIMIT=N (0: every send past the limit, so folded unless an "
        "outlier); default: every send in full",
    )
    parser.add_argument(
        "--report", metavar="FILE", type=Path, help="write the outcome to FILE as JSON"
    )
    if "--" in argv:
        cut = argv.index("--")
        args = parser.parse_args(argv[:cut])
        args.runtests_args = argv[cut + 1 :]
    else:
        args = parser.parse_args(argv)
        args.runtests_args = []
    if args.all and args.labels:
        parser.error("--all runs every test: give it no labels")
    if not args.all:
        args.labels = args.labels or list(DEFAULT_LABELS)
    if args.report:
        args.report = args.report.resolve()  # the tests run in Django's tests folder
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    version = django.__version__
    runtests_args = [*args.labels, "--noinput", *args.runtests_args]
    parallel = _parallel(runtests_args)
    if not parallel:
        runtests_args.append("--parallel=1")
    elif importlib.util.find_spec("tblib") is None:
        # Without it, Django's parallel runner cannot show a failing test's traceback.
        say("==> Installing tblib")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "tblib"], check=True)
    tests_dir = django_tests_dir(version)
    # Django's runtests.py defaults to its own settings; an exported module would win over them.
    os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    if parallel:
        # Spawned workers would start untraced.
        multiprocessing.set_start_method("fork", force=True)

    ignored = count_ignored_exceptions()
    counts = None if args.untraced else install_tracing(args.detail_limit)
    passed = run_django_tests(tests_dir, runtests_args)
    events = folds = None
    if counts is not None:
        from signal_dashboard.record.recorder import recorder

        recorder.drain()
        events, folds = counts[0].value, counts[1].value

    outcome = [
        "passed" if passed else "failed",
        "not traced" if events is None else f"{events} events recorded",
    ]
    if folds:
        outcome.append(f"{folds} sends folded")
    if ignored.value:
        outcome.append(f"ignored exceptions: {ignored.value}")
    labels = " ".join(args.labels) or "all"
    if args.detail_limit is not None:
        labels += f", DETAIL_LIMIT={args.detail_limit}"
    say(f"==> Django {version}'s tests ({labels}): {', '.join(outcome)}")
    traced = None if events is None else events + (folds or 0)
    if traced == 0:
        say("error: tracing recorded no event: it missed the sends, or these tests made none")
    if ignored.value:
        say('error: Python printed "Exception ignored" for exceptions that failed no test')
    if args.report:
        report = {
            "django": version,
            "labels": args.labels,
            "detail_limit": args.detail_limit,
            "passed": passed,
            "events": events,
            "folded": folds,
            "ignored_exceptions": ignored.value,
        }
        args.report.write_text(json.dumps(report))
    return 0 if passed and traced != 0 and not ignored.value else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
