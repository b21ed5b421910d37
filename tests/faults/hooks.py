"""Crashes at a chosen instant of the fire path (FAULTS.md scenario 3), for fault tests.

``python -m tests.faults.hooks HOOK TRIGGER_FILE COMMAND...`` runs ``sundial COMMAND...``
with ``HOOK`` installed. Nothing happens until the test creates ``TRIGGER_FILE``; then the
first process to reach the hook's instant renames it to ``TRIGGER_FILE.fired`` (only one
process can), writes what it was doing there, and SIGKILLs itself.

Hooks:

* ``kill-before-mark`` — the broker has accepted a batch of runs and the leader is about
  to record them ``dispatched``: the published-but-unrecorded window, scenario 3(b).
* ``starve-renew`` — the leader's next lease renewal blocks until the test deletes the
  fired file: a starved renew thread in a process otherwise alive, scenario 5.
* ``kill-mid-apply`` — the API dies inside an apply's transaction, after as many
  schedules as the trigger file says were written.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any


def _claim(trigger: Path) -> Path | None:
    """The fired file if this process won the trigger, else None."""
    fired = trigger.with_name(trigger.name + ".fired")
    try:
        os.rename(trigger, fired)
    except FileNotFoundError:
        return None
    return fired


def kill_before_mark(trigger: Path) -> None:
    """SIGKILL between publishing a batch and recording it, once triggered."""
    import scheduler.firing.outbox as outbox  # noqa: PLC0415 - patched before sundial starts

    # The outbox's own name for the store write, so the hook also fits older outboxes.
    name = "mark_dispatched"
    real = getattr(outbox, name)

    def mark(engine: Any, run_ids: Iterable[str], now: datetime) -> None:
        ids = list(run_ids)
        if ids and trigger.exists() and (fired := _claim(trigger)) is not None:
            fired.write_text("\n".join(ids))
            os.kill(os.getpid(), signal.SIGKILL)
        real(engine, ids, now)

    setattr(outbox, name, mark)


def starve_renew(trigger: Path) -> None:
    """Block the lease thread's next renewal until the test deletes the fired file.

    Only the leader renews, so the leader's lease thread alone is stuck; its scheduler
    thread and everything else run on (FAULTS.md scenario 5).
    """
    import scheduler.leadership.lease as lease  # noqa: PLC0415 - patched before sundial starts

    real = lease.RedisLease.renew

    def renew(self: Any) -> bool:
        if trigger.exists() and (fired := _claim(trigger)) is not None:
            fired.write_text(str(os.getpid()))
            while fired.exists():
                threading.Event().wait(0.05)
        return bool(real(self))

    setattr(lease.RedisLease, "renew", renew)  # noqa: B010 - mypy refuses assigning a method


def kill_mid_apply(trigger: Path) -> None:
    """SIGKILL inside an apply's transaction, after the number of schedules the trigger file
    holds were written and before the rest (and the commit)."""
    import scheduler.store.apply as apply  # noqa: PLC0415 - patched before sundial starts

    real = apply._apply_one
    written = 0

    def threshold() -> int | None:
        try:
            return int(trigger.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def apply_one(*args: Any, **kwargs: Any) -> None:
        nonlocal written
        limit = threshold()
        if limit is not None and written >= limit and (fired := _claim(trigger)) is not None:
            fired.write_text(str(written))
            os.kill(os.getpid(), signal.SIGKILL)
        real(*args, **kwargs)
        written += 1

    setattr(apply, "_apply_one", apply_one)  # noqa: B010 - a private name, patched


HOOKS: dict[str, Callable[[Path], None]] = {
    "kill-before-mark": kill_before_mark,
    "starve-renew": starve_renew,
    "kill-mid-apply": kill_mid_apply,
}


def main(argv: Sequence[str]) -> None:
    """Install the hook, then run the ``sundial`` command."""
    hook, trigger, *command = argv
    HOOKS[hook](Path(trigger))
    from sundial.cli import main as sundial  # noqa: PLC0415 - after the hook is in place

    sundial(command)


if __name__ == "__main__":
    main(sys.argv[1:])
