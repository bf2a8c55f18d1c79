"""Memory: resident size of a traced process over a million signal sends.

    python bench/memory.py [--sends 1000000] [--configs recorder,dashboard,redis,many-senders]

Each configuration runs in a fresh child process with tracing installed the way a project's
AppConfig installs it. The child sends ``post_save`` for unsaved instances of four
``django.contrib.auth``/``contenttypes`` models (no database), rotating over 100 instances
of each, to three receivers (12 statistics series), as fast as it can on one thread, and reads
its VmRSS at 0, 10k, 100k, 200k, 500k and 1M sends. Configurations:

- ``recorder``: tracing alone (recent events, request summaries, latency statistics);
- ``dashboard``: plus one dashboard attached in-process: the broadcaster on an event loop
  thread, handing its batches to a reader that counts and discards them (what a socket gets,
  without its HTML);
- ``redis``: the Redis transport publishing (a ``redis-server`` started here on a free port);
- ``many-senders``: like ``recorder``, but every send names one of 20,000 distinct sender
  classes, past ``STATS_MAX_KEYS`` (5,000), to show the statistics stay bounded in keys.

Events sent faster than a stream drains them are dropped and counted: the table shows how
many. The statistics also keep one histogram per series per 10 s slice of their 300 s window,
so a run shorter than the window grows them with time as well as with sends: ``--sends``
beyond 1M (checkpoints at 2M, 5M and 10M) runs past the window.
Target: resident size flat within 10% from 100k to 1M sends, once the buffers are full.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CONFIGS = ("recorder", "dashboard", "redis", "many-senders")
CHECKPOINTS = (0, 10_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000)
TARGET_GROWTH = 0.10
INSTANCES_PER_MODEL = 100
DISTINCT_SENDERS = 20_000


def rss_kib() -> int:
    """This process's resident set size, in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


# --- In the child ------------------------------------------------------------------------------


def set_up_django(redis_url: str | None) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "signal_dashboard"],
        CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
        SIGNAL_DASHBOARD={"ENABLED": True, "REDIS_URL": redis_url},
    )
    django.setup()


def on_saved_audit(sender: type, instance: Any, created: bool, **kwargs: Any) -> None:
    return None


def on_saved_cache(sender: type, instance: Any, **kwargs: Any) -> str:
    return f"{sender.__name__}:{instance.pk}"


def on_saved_search(sender: type, instance: Any, update_fields: Any, **kwargs: Any) -> bool:
    return update_fields is None


def senders_and_instances(many_senders: bool) -> list[tuple[type, Any]]:
    """What each send passes, in the order the sends cycle through."""
    from django.contrib.auth.models import Group, Permission, User
    from django.contrib.contenttypes.models import ContentType

    instances = [
        instance
        for index in range(INSTANCES_PER_MODEL)
        for instance in (
            User(username=f"user{index}", email=f"user{index}@example.com"),
            Group(name=f"group{index}"),
            Permission(name=f"Can do {index}", codename=f"do_{index}"),
            ContentType(app_label="shop", model=f"model{index}"),
        )
    ]
    if not many_senders:
        return [(type(instance), instance) for instance in instances]
    # Plain classes: a sender is a sender to the statistics, model or not.
    return [
        (type(f"Sender{index}", (), {}), instances[index % len(instances)])
        for index in range(DISTINCT_SENDERS)
    ]


def attach_dashboard() -> dict[str, int]:
    """Attach a dashboard-like reader in this process; returns its live row count."""
    from signal_dashboard.record.broadcast import broadcaster

    received = {"rows": 0}
    ready = threading.Event()

    async def deliver(batch: Any) -> None:
        received["rows"] += len(batch["rows"])

    async def read() -> None:
        broadcaster.attach(deliver)
        ready.set()
        await asyncio.Event().wait()  # the broadcaster's flushes run on this loop

    threading.Thread(target=asyncio.run, args=(read(),), daemon=True).start()
    ready.wait()
    return received


def run_child(config: str, sends: int, redis_url: str | None) -> dict[str, Any]:
    set_up_django(redis_url if config == "redis" else None)
    from django.db.models.signals import post_save

    from signal_dashboard.backends.redis.publisher import Publisher
    from signal_dashboard.capture.failures import tracing_failures
    from signal_dashboard.record.broadcast import broadcaster
    from signal_dashboard.record.recorder import recorder

    for receiver in (on_saved_audit, on_saved_cache, on_saved_search):
        post_save.connect(receiver, weak=False)
    received = attach_dashboard() if config == "dashboard" else None
    cycle = senders_and_instances(many_senders=config == "many-senders")
    send = post_save.send
    samples = {}
    checkpoints = [point for point in CHECKPOINTS if point <= sends]
    start = time.perf_counter()
    done = 0
    for checkpoint in checkpoints:
        while done < checkpoint:
            sender, instance = cycle[done % len(cycle)]
            send(sender=sender, instance=instance, created=True, update_fields=None, raw=False)
            done += 1
        samples[checkpoint] = rss_kib()
    elapsed = time.perf_counter() - start
    publisher = Publisher.current
    if publisher is not None:
        publisher.close()
    return {
        "rss": samples,
        "seconds": elapsed,
        "dropped": publisher.dropped if publisher else broadcaster.dropped,
        "streamed": received["rows"] if received else (publisher.sent if publisher else 0),
        "series": len(recorder.latency.calls) + len(recorder.latency.sends),
        "overflow": recorder.latency.overflow,
        "failures": tracing_failures(),
    }


# --- In the parent -----------------------------------------------------------------------------


def measure(config: str, sends: int, redis_url: str | None) -> dict[str, Any]:
    python_path = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    command = [sys.executable, __file__, "--child", config, "--sends", str(sends)]
    if redis_url:
        command += ["--redis-url", redis_url]
    result = subprocess.run(
        command,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(python_path)},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{config} failed:\n{result.stderr}")
    data = json.loads(result.stdout.splitlines()[-1])
    data["rss"] = {int(sends): kib for sends, kib in data["rss"].items()}
    return data


def print_row(config: str, data: dict[str, Any], checkpoints: list[int]) -> float | None:
    """Print one configuration's line; returns its growth from 100k to the last checkpoint."""
    rss = data["rss"]
    growth = None
    if 100_000 in rss and checkpoints[-1] > 100_000:
        growth = rss[checkpoints[-1]] / rss[100_000] - 1
    cells = "".join(f"{rss[point] / 1024:>9.1f}" for point in checkpoints)
    print(
        f"{config:<14}{cells}"
        + (f"{growth * 100:>+8.1f}%" if growth is not None else f"{'':>9}")
        + f"{data['seconds']:>7.1f}{data['streamed']:>10,}{data['dropped']:>10,}"
        f"{data['series']:>7,}{data['overflow']:>10,}"
    )
    return growth


def _count(sends: int) -> str:
    return f"{sends // 1000}k" if sends < 10**6 else f"{sends // 10**6}M"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=1_000_000, help="up to 10,000,000")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child, args.sends, args.redis_url)))
        return

    import django

    from signal_dashboard.integrations.testing.redis_server import RedisServer

    configs = args.configs.split(",")
    checkpoints = [point for point in CHECKPOINTS if point <= args.sends]
    print(
        f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"post_save to 3 receivers, RSS in MiB after N sends"
    )
    header = (
        f"{'config':<14}"
        + "".join(f"{_count(point):>9}" for point in checkpoints)
        + f"{'growth':>9}{'secs':>7}{'streamed':>10}{'dropped':>10}{'series':>7}{'overflow':>10}"
    )
    print(header)
    print("-" * len(header))
    missed = []
    for config in configs:
        if config == "redis":
            with RedisServer() as redis_server:
                data = measure(config, args.sends, redis_server.url)
        else:
            data = measure(config, args.sends, None)
        growth = print_row(config, data, checkpoints)
        if growth is not None and growth > TARGET_GROWTH:
            missed.append(config)
    verdict = f"MISSED for {', '.join(missed)}" if missed else "ok"
    if checkpoints[-1] <= 100_000:
        verdict = "not measured"
    print(f"growth from 100k to {checkpoints[-1]:,} sends <= {TARGET_GROWTH:.0%}: {verdict}")


if __name__ == "__main__":
    main()
