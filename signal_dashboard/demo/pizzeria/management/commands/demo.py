"""``manage.py demo``: the pizzeria under daphne, with live traffic for the dashboard to show."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

import signal_dashboard

from ...models import Topping
from ...traffic import TrafficGenerator
from ...views import DEMO_PASSWORD, DEMO_USERNAME

HOST = "127.0.0.1"
ASGI_APPLICATION = "signal_dashboard.demo.asgi:application"
# Daphne runs from here, so it imports the same signal_dashboard as this command.
PROJECT_ROOT = Path(signal_dashboard.__file__).resolve().parent.parent
TOPPINGS = ("mozzarella", "tomato", "basil", "mushrooms", "ham", "salami", "olives", "onions")
STARTUP_TIMEOUT = 20.0
SHUTDOWN_TIMEOUT = 10.0
POLL_INTERVAL = 0.1


class Command(BaseCommand):
    help = "Serve the demo pizzeria with daphne and send it traffic; the dashboard is at /signals/."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--no-traffic", action="store_true", help="Only serve; press the buttons yourself."
        )
        parser.add_argument(
            "--worker",
            action="store_true",
            help="Run tasks in a db_worker process (django-tasks-db); needs REDIS_URL.",
        )
        parser.add_argument(
            "--duration",
            type=float,
            metavar="SECONDS",
            help="Stop after this long (default: at Ctrl-C).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        port: int = options["port"]
        duration: float | None = options["duration"]
        call_command("migrate", interactive=False, verbosity=max(0, options["verbosity"] - 1))
        _seed()
        self.stdout.write(f"Demo user: {DEMO_USERNAME!r}, password {DEMO_PASSWORD!r} (staff)")
        if getattr(settings, "PIZZERIA_SIGNAL_MISTAKES", False):
            self.stdout.write(
                "The signal_dashboard.W005 warning is on purpose: the pizzeria makes three signal "
                "mistakes for the dashboard to show (a receiver lost, one connected twice, one "
                "connected in the login view). PIZZERIA_SIGNAL_MISTAKES = False turns them off."
            )
        if _answers(port):
            raise CommandError(f"Port {port} is already in use: pick another with --port.")

        if options["worker"]:
            if not settings.SIGNAL_DASHBOARD.get("REDIS_URL"):
                raise CommandError(
                    "--worker needs REDIS_URL: the worker's sends reach the dashboard through "
                    "Redis (REDIS_URL=redis://127.0.0.1:6379/0 python3 manage.py demo --worker)."
                )
            os.environ["DEMO_TASK_WORKER"] = "1"  # for daphne and the worker
        # Daphne's own log and access log only from -v 2 on: the dashboard is the thing to watch.
        server = _start_daphne(port, verbosity=max(0, options["verbosity"] - 1))
        worker = _start_worker() if options["worker"] else None
        traffic: TrafficGenerator | None = None
        died = False
        try:
            _wait_until_listening(server, port)
            base_url = f"http://{HOST}:{port}"
            self.stdout.write(f"Signal dashboard: {base_url}/signals/")
            self.stdout.write(f"Pizzeria:         {base_url}/")
            self.stdout.write("Press Ctrl-C to stop.", ending="\n\n")
            if options["no_traffic"]:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    server.wait(duration)
            else:
                traffic = TrafficGenerator(base_url)
                traffic.run(duration, keep_going=lambda: server.poll() is None)
            died = server.poll() is not None
        except KeyboardInterrupt:
            self.stdout.write("")
        finally:
            _stop(server)
            if worker is not None:
                _stop(worker)

        if traffic is not None:
            stats = traffic.stats
            self.stdout.write(f"demo traffic: {stats.requests} requests, {stats.failed} failed")
            if options["verbosity"] > 1:
                self.stdout.write(", ".join(f"{n}: {c}" for n, c in sorted(stats.actions.items())))
        if died:
            raise CommandError(f"daphne exited early with code {server.returncode}.")


def _seed() -> None:
    """Create or update the staff user the shop logs in as, and the toppings pizzas get."""
    user, _ = User.objects.get_or_create(username=DEMO_USERNAME)
    user.is_staff = True
    # A new hash would end every session of it (Django checks a session against the password
    # hash): dashboards left open across a restart stay signed in.
    if not user.check_password(DEMO_PASSWORD):
        user.set_password(DEMO_PASSWORD)
    user.save()
    for name in TOPPINGS:
        Topping.objects.get_or_create(name=name)


def _answers(port: int) -> bool:
    """Whether something on this machine accepts connections on ``port``."""
    try:
        socket.create_connection((HOST, port), timeout=POLL_INTERVAL).close()
    except OSError:
        return False
    return True


def _start_daphne(port: int, verbosity: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "daphne", "-b", HOST, "-p", str(port), "-v", str(verbosity)]
    command.append(ASGI_APPLICATION)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE}
    return subprocess.Popen(command, cwd=PROJECT_ROOT, env=env)


def _start_worker() -> subprocess.Popen[bytes]:
    """django-tasks-db's worker, running the tasks the pizzeria enqueues."""
    command = [sys.executable, "-m", "django", "db_worker", "--interval", "0.5"]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE}
    return subprocess.Popen(command, cwd=PROJECT_ROOT, env=env)


def _wait_until_listening(server: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not _answers(port):
        if server.poll() is not None:
            raise CommandError(f"daphne exited with code {server.returncode} before listening.")
        if time.monotonic() > deadline:
            raise CommandError(f"daphne did not listen on port {port} in {STARTUP_TIMEOUT:.0f} s.")
        time.sleep(POLL_INTERVAL)


def _stop(server: subprocess.Popen[bytes]) -> None:
    """Ask daphne to shut down, and make sure it has."""
    if server.poll() is None:
        server.terminate()
    try:
        server.wait(SHUTDOWN_TIMEOUT)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
