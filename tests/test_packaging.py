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
    assert dict(entry_points["pytest11"]) == {
        "signal_dashboard": "signal_dashboard.integrations.pytest_plugin"
    }


# --- Installed from a checkout, as users install it today ------------------------------------

# A project with nothing of the checkout's own settings: the app must find its files itself.
MINIMAL_PROJECT = """
import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.staticfiles",
        "signal_dashboard",
    ],
    TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}],
    STATIC_URL="static/",
    SIGNAL_DASHBOARD={"ENABLED": False},
)
django.setup()
import signal_dashboard
from django.contrib.staticfiles import finders
from django.template.loader import get_template

for name in ("signal_dashboard/index.html", "signal_dashboard/registry.html"):
    print(get_template(name).origin.name)
for name in ("signal_dashboard/dashboard.css", "signal_dashboard/dashboard.js"):
    print(finders.find(name))
print(signal_dashboard.__file__)
"""


@pytest.mark.parametrize("editable", [True, False], ids=["editable", "wheel"])
def test_an_install_of_the_checkout_finds_its_templates_and_static_files(
    tmp_path: Path, editable: bool
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # The app itself from the install; its dependencies from this suite's environment (on
    # PYTHONPATH, where this suite's own editable install of the checkout is not active).
    install = [str(python), "-m", "pip", "install", "-q", "--no-deps"]
    install += ["-e", str(REPO)] if editable else [str(REPO)]
    result = subprocess.run(install, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    site_packages = next(p for p in sys.path if p.endswith("site-packages"))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": site_packages, "HOME": str(tmp_path)}
    project = tmp_path / "project"
    project.mkdir()
    (project / "check.py").write_text(MINIMAL_PROJECT)
    result = subprocess.run(
        [str(python), "check.py"], cwd=project, capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    *found, package = result.stdout.splitlines()
    assert "None" not in found
    installed_in = REPO if editable else venv
    assert Path(package).is_relative_to(installed_in)
    for path in found:
        assert Path(path).is_file()
        assert Path(path).absolute().is_relative_to(installed_in), path
