"""Publishing each run at most once at a Redis broker: a marker per run, written in the same
atomic step as its message.

A leader killed between publishing a batch and recording it ``dispatched`` leaves those runs
``pending``, and the next term relays them. With a marker per published run the relay is
recognised at the broker: nothing is pushed again, and the new leader records the runs.

One script call per batch does it all, so the cost is a few hash operations per message:

* ``sundial:published:u:<day>`` — runs published on that (UTC) day and not yet recorded, a
  hash of run ids kept two days: a leader may die during a long database outage, and the
  next term must still recognise its runs when the database is back;
* ``sundial:published:r:<window>`` — runs recorded ``dispatched`` in that 10-second window,
  kept for two windows: a late push of the same run (an ex-leader paused between its lease
  check and its push) is dropped while the run is in this or the previous window.

A push looks the run up in today's and yesterday's unrecorded hashes and in the current and
previous windows, pushes the messages of runs found nowhere (one ``LPUSH`` per list, order
kept) and adds them to today's hash. Recording moves runs from the unrecorded hashes to the
current window. Markers cost ~100 bytes each while they live.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

import redis

from scheduler.timing.clock import Clock, utcnow

PREFIX = "sundial:published:"
DAY_S = 86400
# Runs recorded within this many seconds are still recognised (one to two windows).
WINDOW_S = 10

# KEYS[1..4]: unrecorded today, unrecorded yesterday, recorded this window, recorded the
# last window; KEYS[5..]: the broker lists of this batch. ARGV[1]: TTL (s) of today's hash;
# then per message: its list (an index into KEYS), its run id, its body.
# Returns 1 (pushed) or 0 (already published) per message.
_PUSH = """
local n = (#ARGV - 1) / 3
local ids = {}
for i = 1, n do ids[i] = ARGV[3 * i] end
local seen = {}
for k = 1, 4 do
  -- A hash emptied by recording no longer exists: skip the lookup.
  if redis.call('EXISTS', KEYS[k]) == 1 then
    local found = redis.call('HMGET', KEYS[k], unpack(ids))
    for i = 1, n do seen[i] = seen[i] or found[i] end
  end
end
local bodies, fresh, pushed = {}, {}, {}
for i = 1, n do
  if seen[i] then
    pushed[i] = 0
  else
    pushed[i] = 1
    local list = tonumber(ARGV[3 * i - 1])
    local items = bodies[list]
    if not items then
      items = {}
      bodies[list] = items
    end
    items[#items + 1] = ARGV[3 * i + 1]
    fresh[#fresh + 1] = ids[i]
    fresh[#fresh + 1] = '1'
  end
end
for list, items in pairs(bodies) do
  redis.call('LPUSH', KEYS[list], unpack(items))
end
if #fresh > 0 then
  redis.call('HSET', KEYS[1], unpack(fresh))
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return pushed
"""
# KEYS: unrecorded today, unrecorded yesterday, recorded this window. ARGV[1]: TTL (s) of
# the window's hash; ARGV[2..]: run ids the store now records as dispatched.
_RECORDED = """
local ids = {}
local fields = {}
for i = 2, #ARGV do
  table.insert(ids, ARGV[i])
  table.insert(fields, ARGV[i])
  table.insert(fields, '1')
end
redis.call('HDEL', KEYS[1], unpack(ids))
redis.call('HDEL', KEYS[2], unpack(ids))
redis.call('HSET', KEYS[3], unpack(fields))
redis.call('EXPIRE', KEYS[3], ARGV[1])
return #ids
"""


class Message(NamedTuple):
    """One message to push: the Redis list it goes to, its run, its kombu envelope."""

    list_key: str
    run_id: str
    body: str


def _keys(now: datetime) -> tuple[str, str, str, str]:
    day, window = int(now.timestamp()) // DAY_S, int(now.timestamp()) // WINDOW_S
    return (
        f"{PREFIX}u:{day}",
        f"{PREFIX}u:{day - 1}",
        f"{PREFIX}r:{window}",
        f"{PREFIX}r:{window - 1}",
    )


class PushOnce:
    """Pushes messages to a Redis broker, each run at most once (see the module docstring).

    Raises :class:`redis.RedisError` when the broker fails: a batch's script either ran
    whole or not at all, and pushing it again is harmless either way.
    """

    def __init__(self, client: redis.Redis, clock: Clock = utcnow) -> None:
        self._clock = clock
        self._client = client
        self._push = client.register_script(_PUSH)
        self._recorded = client.register_script(_RECORDED)

    def push(self, messages: Sequence[Message]) -> list[bool]:
        """Push in order; per message, True if pushed now, False if it was already."""
        if not messages:
            return []
        lists: dict[str, int] = {}
        args: list[str | int] = [2 * DAY_S]
        for message in messages:
            index = lists.setdefault(message.list_key, len(lists) + 5)
            args += (index, message.run_id, message.body)
        keys = [*_keys(self._clock()), *lists]
        return [bool(flag) for flag in self._push(keys=keys, args=args)]

    def forget(self, run_ids: Sequence[str]) -> None:
        """These runs' messages were lost after all: the next push sends them again."""
        if run_ids:
            keys = _keys(self._clock())
            with self._client.pipeline() as pipe:
                for key in keys:
                    pipe.hdel(key, *run_ids)
                pipe.execute()

    def recorded(self, run_ids: Sequence[str]) -> None:
        """These runs are recorded dispatched: keep recognising them for a window or two."""
        if not run_ids:
            return
        today, yesterday, window, _last = _keys(self._clock())
        self._recorded(keys=[today, yesterday, window], args=[3 * WINDOW_S, *run_ids])
