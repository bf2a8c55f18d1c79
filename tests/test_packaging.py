"""The wheel ships the app with its templates and static files, and nothing else."""

from __future__ import annotations

import configparser
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import signal_dashboard

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.build


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    outdir = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(outdir), str(REPO)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [path] = outdir.glob("*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


def test_wheel_is_named_after_the_version(wheel: zipfile.ZipFile) -> None:
    assert Path(wheel.filename).name == (
        f"signal_dashboard-{signal_dashboard.__version__}-py3-none-any.whl"
    )


def test_wheel_ships_templates_and_static_inside_the_package(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    assert "signal_dashboard/templates/signal_dashboard/base.html" in names
    assert "signal_dashboard/static/signal_dashboard/dashboard.css" in names
    assert not [name for name in names if name.startswith(("templates/", "static/"))]


def test_wheel_ships_the_app_without_demo_or_tests(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    assert "signal_dashboard/__init__.py" in names
    assert "signal_dashboard/tracing.py" in names
    assert not [name for name in names if name.startswith(("signal_dashboard/demo/", "tests/"))]
    assert not [name for name in names if "__pycache__" in name]


def test_wheel_registers_the_pytest_plugin(wheel: zipfile.ZipFile) -> None:
    version = signal_dashboard.__version__
    entry_points = configparser.ConfigParser()
    entry_points.read_string(
        wheel.read(f"signal_dashboard-{version}.dist-info/entry_points.txt").decode()
    )
    assert dict(entry_points["pytest11"]) == {"signal_dashboard": "signal_dashboard.pytest_plugin"}
