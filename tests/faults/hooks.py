"""Crashes at a chosen instant of the fire path (FAULTS.md scenario 3), for fault tests.

``python -m tests.faults.hooks HOOK TRIGGER_FILE COMMAND...`` runs ``sundial COMMAND...``
with ``HOOK`` installed. Nothing happens until the test creates ``TRIGGER_FILE``; then the
first process to reach the hook's instant renames it to ``TRIGGER_FILE.fired`` (only one
process can), writes what it was doing there, and SIGKILLs itself.

Hooks:

* ``kill-before-mark`` — the broker has accepted a batch of runs and the leader is about
  to record them ``dispatched``: the published-but-unrecorded window, scenario 3(b).
"""

from __future__ import annotations

import os
import signal
import sys
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


HOOKS: dict[str, Callable[[Path], None]] = {"kill-before-mark": kill_before_mark}


def main(argv: Sequence[str]) -> None:
    """Install the hook, then run the ``sundial`` command."""
    hook, trigger, *command = argv
    HOOKS[hook](Path(trigger))
    from sundial.cli import main as sundial  # noqa: PLC0415 - after the hook is in place

    sundial(command)


if __name__ == "__main__":
    main(sys.argv[1:])
