"""The Redis layout every part of the transport shares: keys, the channel layer, clients and
timeouts.

With ``SIGNAL_DASHBOARD["REDIS_URL"]`` set, every process with tracing installed publishes its
events and statistics (publisher.py); each web process with dashboards open reads them once
(relay.py); pages, exports and new dashboards read what every process sent (history.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers, get_channel_layer

from ...capture.context import HOST, PID
from ...conf import get_config
from ...record.stats.store import SNAPSHOT_FORMAT

if TYPE_CHECKING:
    from channels.layers import BaseChannelLayer

ALIAS = "signal_dashboard"
SOURCE = f"{HOST}:{PID}"
# One capped stream, an entry per event holding its row (what dashboards list and filter) and
# the whole event (what its detail shows), both in msgpack; a row names its entry as
# "history_id".
EVENTS_KEY = "signal_dashboard:events"
# Appends a batch to the stream in one call. ARGV: the cap, the oldest id kept (older entries
# go, whatever the cap says), then a msgpack array of each event's row and whole form, in turn.
# Returns the new entries' ids, space-separated. In the client, this costs a few microseconds
# per event; a pipeline of one XADD per event cost some 30.
APPEND_SCRIPT = """
local forms = cmsgpack.unpack(ARGV[3])
local ids = {}
for i = 1, #forms, 2 do
    ids[#ids + 1] = redis.call(
        "XADD", KEYS[1], "MAXLEN", "~", ARGV[1], "*", "row", forms[i], "event", forms[i + 1])
end
redis.call("XTRIM", KEYS[1], "MINID", "~", ARGV[2])
return table.concat(ids, " ")
"""
# With the snapshot's format in it: processes of versions that write another format do not
# read each other's statistics (nor match each other's key pattern).
STATS_KEY_PREFIX = f"signal_dashboard:stats-v{SNAPSHOT_FORMAT}:"
# Each process's latest finished requests, commands and task runs (capture.origins.origin_data()
# each, newest first), as JSON, kept as long as its statistics.
REQUESTS_KEY_PREFIX = "signal_dashboard:requests-v1:"
REQUESTS_PUBLISHED = 50

FLUSH_INTERVAL = 0.1
MAX_BATCH = 500  # rows per message: channels_redis keeps whole messages in memory
CONNECT_TIMEOUT = 1.0
OPERATION_TIMEOUT = 2.0
LAYER_READ_TIMEOUT = 15.0
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 5.0
STATS_INTERVAL = 1.0
# Writing the statistics, and merging every process's, takes time in proportion to them (some
# 120 ms to write 36 series with a full window of wide histograms): when they take long, a
# process writes them less often than every STATS_INTERVAL, and merges them less often than
# every MERGED_STATS_TTL, so that each takes at most this share of its time.
STATS_SHARE = 0.02
STATS_RETENTION = 600
EXIT_FLUSH_TIMEOUT = 3.0
# Merged statistics are read from Redis at most this often.
MERGED_STATS_TTL = 1.0


def redis_url() -> str | None:
    return get_config()["REDIS_URL"] or None


def _hosts(url: str) -> list[dict[str, Any]]:
    # A dashboard's receive blocks in BRPOP for up to channels_redis's brpop_timeout (5 s) when
    # nothing happens: reads must be allowed longer than that (redis-py's default is not). The
    # publisher bounds its own calls.
    return [
        {
            "address": url,
            "socket_connect_timeout": CONNECT_TIMEOUT,
            "socket_timeout": LAYER_READ_TIMEOUT,
        }
    ]


def redis_layer(url: str) -> BaseChannelLayer:
    from channels_redis.core import RedisChannelLayer

    return RedisChannelLayer(hosts=_hosts(url), prefix="signal_dashboard:channels")


# The URL each of our channel layer aliases was made for.
_registered: dict[str, str] = {}


def layer_alias() -> str:
    """The alias of the layer the dashboards' group is on (read by the relay and signals_tail):
    ours on Redis, or the project's default."""
    url = redis_url()
    if url is None:
        return DEFAULT_CHANNEL_LAYER
    # channels forgets its layers when CHANNEL_LAYERS changes, and the URL may have changed:
    # register ours again if needed.
    if ALIAS not in channel_layers.backends or _registered.get(ALIAS) != url:
        channel_layers.set(ALIAS, redis_layer(url))
        _registered[ALIAS] = url
    return ALIAS


RECORDING_KEY = "signal_dashboard:recording"
# How often each process's publisher reads the switch (seconds).
RECORDING_POLL = 1.0


def channel_layer() -> BaseChannelLayer:
    return get_channel_layer(layer_alias())


def redis_client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=OPERATION_TIMEOUT
    )
