"""SIGTERM and SIGINT are acted on from a thread of their own, never inside the handler, so
a stop that needs a lock the interrupted main thread holds waits for it instead of hanging
(the SIGTERM'd leader that kept its lease)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers import SchedulerNotRunningError

from scheduler.leadership.replica import build_replica
from scheduler.settings import Settings
from scheduler.stop_signals import StopSignals
from scheduler.store.migrate import upgrade
from tests.services import wait_for


def test_a_stop_signal_is_acted_on_outside_the_main_thread_once_its_lock_is_free() -> None:
    lock = threading.Lock()  # not re-entrant, like the one inside threading.Event
    seen: list[tuple[int, bool, bool]] = []

    def on_stop(signum: int) -> None:
        got = lock.acquire(timeout=10)
        seen.append((signum, got, threading.current_thread() is threading.main_thread()))
        if got:
            lock.release()

    with StopSignals(on_stop):
        with lock:
            os.kill(os.getpid(), signal.SIGTERM)
            # Python code runs here, where a handler calling on_stop would wait on this
            # thread's own lock for the whole timeout.
            interrupted_here = list(seen)
        wait_for(lambda: seen, 10, "the stop to be acted on")
        os.kill(os.getpid(), signal.SIGINT)
        wait_for(lambda: len(seen) == 2, 10, "the second stop")
    assert interrupted_here == []
    assert seen == [(signal.SIGTERM, True, False), (signal.SIGINT, True, False)]


def test_leaving_restores_the_handlers_it_replaced() -> None:
    def mine(_signum: int, _frame: object) -> None:
        """A handler of the caller's."""

    before = signal.signal(signal.SIGTERM, mine)
    interrupt = signal.getsignal(signal.SIGINT)
    try:
        with StopSignals(lambda _signum: None):
            assert signal.getsignal(signal.SIGTERM) is not mine
            assert _wakeup_fd() != -1
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is interrupt
        assert _wakeup_fd() == -1  # none left behind
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_failing_stop_does_not_deafen_it_to_the_next_signal() -> None:
    calls: list[int] = []

    def on_stop(signum: int) -> None:
        calls.append(signum)
        if len(calls) == 1:
            raise RuntimeError("the first stop failed")

    with StopSignals(on_stop):
        os.kill(os.getpid(), signal.SIGTERM)
        wait_for(lambda: calls, 10, "the first stop")
        os.kill(os.getpid(), signal.SIGTERM)
        wait_for(lambda: len(calls) == 2, 10, "the second stop")
    assert calls == [signal.SIGTERM, signal.SIGTERM]


def _wakeup_fd() -> int:
    """The wakeup fd now (reading it means setting it: it is put back as it was)."""
    fd = signal.set_wakeup_fd(-1)
    if fd != -1:
        signal.set_wakeup_fd(fd, warn_on_full_buffer=False)
    return fd


def test_a_sigterm_while_the_replica_starts_ends_its_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop that lands after run() checked for one and before APScheduler runs finds
    nothing to shut down; the start's listener acts on it, so run() returns."""
    url = f"sqlite:///{tmp_path / 'sundial.db'}"
    upgrade(url)
    settings = Settings(
        _env_file=None, database_url=url, data_dir=tmp_path / "data", scheduler_metrics_port=0
    )
    replica = build_replica(settings)
    scheduler = replica.scheduler
    real_start, real_shutdown = scheduler.start, scheduler.shutdown
    shutdowns: list[str] = []
    hung: list[bool] = []

    def noted_shutdown(*args: Any, **kwargs: Any) -> None:
        try:
            real_shutdown(*args, **kwargs)
        except SchedulerNotRunningError:
            shutdowns.append("not running")
            raise
        shutdowns.append("stopped")

    def start_after_the_signal(*args: Any, **kwargs: Any) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        # The signals thread tries to stop the scheduler now and finds it not running yet.
        wait_for(lambda: shutdowns or None, 10, "the stop to be tried")
        assert shutdowns == ["not running"]
        watchdog.start()
        real_start(*args, **kwargs)

    def unstick() -> None:
        hung.append(True)
        real_shutdown(wait=False)

    watchdog = threading.Timer(20, unstick)
    monkeypatch.setattr(scheduler, "shutdown", noted_shutdown)
    monkeypatch.setattr(scheduler, "start", start_after_the_signal)
    try:
        replica.run()
    finally:
        watchdog.cancel()
    assert hung == [], "run() went on serving after the SIGTERM"
    assert shutdowns == ["not running", "stopped"]  # the second by the start's listener
    assert not scheduler.running
