"""A worker-side execution ledger in Redis: a run delivered twice (a re-publish after a
scheduler crash, a broker redelivery) is executed once.

One key per (run id, Celery retry number). The delivery that creates it runs the task and
holds the key as ``running`` with a short TTL, renewed while the body runs; when the body
returns or raises, the key becomes ``done`` for days. A later delivery that finds ``done``
is dropped. One that finds ``running`` meets either a live execution or one whose worker
died mid-task: the key of a dead execution stops being renewed and expires within
``running_ttl_s``, so a redelivery after that runs the task again rather than being lost.
"""

from __future__ import annotations

import logging
import secrets
import threading
from enum import Enum
from types import TracebackType

import redis

from scheduler.leadership.lease import COMPARE_AND_DELETE, COMPARE_AND_EXTEND
from scheduler.runs.execution_ledger import ledger_key

log = logging.getLogger("sundial.ledger")

# A finished run is remembered this long: longer than any redelivery or re-publish.
DONE_TTL_S = 7 * 86400
# A running execution's claim lapses this long after its worker stopped renewing it.
RUNNING_TTL_S = 30.0
DONE = "done"

# Mark the run done unless another delivery claimed it after ours lapsed.
_FINISH = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] or not held then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""


class Seen(Enum):
    """Why a delivery may not run now."""

    DONE = "done"  # another delivery ran this attempt to its end
    RUNNING = "running"  # another delivery is running it (or died within running_ttl_s)


class ExecutionLedger:
    """Remembers which (run id, Celery retry) pairs are running or done, in Redis."""

    def __init__(
        self,
        client: redis.Redis,
        done_ttl_s: int = DONE_TTL_S,
        running_ttl_s: float = RUNNING_TTL_S,
    ) -> None:
        self.client = client
        self.done_ttl_s = done_ttl_s
        self.running_ttl_s = running_ttl_s
        # A running claim is extended, or given up, only while it is still ours: the
        # lease's compare-and-set scripts.
        self._renew = client.register_script(COMPARE_AND_EXTEND)
        self._finish = client.register_script(_FINISH)
        self._release = client.register_script(COMPARE_AND_DELETE)

    def start(self, run_id: str, retries: int) -> Execution | Seen:
        """Claim this attempt: an :class:`Execution` to run it under, or why not."""
        key = ledger_key(run_id, retries)
        token = f"running:{secrets.token_hex(8)}"
        ttl_ms = int(self.running_ttl_s * 1000)
        for _ in range(2):  # a claim may lapse between SET and GET: look once more
            if self.client.set(key, token, nx=True, px=ttl_ms):
                return Execution(self, key, token)
            held = self.client.get(key)
            if held is not None:
                text = held.decode() if isinstance(held, bytes) else str(held)
                # Anything but a running claim (also the "1" older versions wrote) is done.
                return Seen.RUNNING if text.startswith("running:") else Seen.DONE
        return Seen.RUNNING

    def renew(self, key: str, token: str) -> bool:
        """Extend a running claim; False when it is no longer ours."""
        return bool(self._renew(keys=[key], args=[token, int(self.running_ttl_s * 1000)]))

    def finish(self, key: str, token: str) -> None:
        """The attempt has ended: remember it as done."""
        self._finish(keys=[key], args=[token, DONE, self.done_ttl_s])

    def release(self, key: str, token: str) -> None:
        """Forget a claim, so the next delivery of the attempt runs it."""
        self._release(keys=[key], args=[token])


class Execution:
    """A claim held while the task body runs: renewed from a thread, settled on exit."""

    def __init__(self, ledger: ExecutionLedger, key: str, token: str) -> None:
        self._ledger = ledger
        self.key = key
        self._token = token
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="sundial-ledger", daemon=True)

    def __enter__(self) -> Execution:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.settle(requeued=bool(getattr(exc, "requeue", False)))

    def settle(self, requeued: bool) -> None:
        """Done, or given up when the task requeued its own message (Celery ``Reject``)."""
        if requeued:
            self._ledger.release(self.key, self._token)
        else:
            self._ledger.finish(self.key, self._token)

    def _keep(self) -> None:
        every = self._ledger.running_ttl_s / 3
        while not self._stop.wait(every):
            try:
                if not self._ledger.renew(self.key, self._token):
                    log.warning("ledger: %s lapsed while running; a redelivery may run", self.key)
                    return
            except redis.RedisError as exc:  # keep trying until the claim lapses
                log.warning("ledger: renewing %s failed: %s", self.key, exc)
