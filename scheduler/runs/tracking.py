"""Run outcomes from Celery task events: any worker started with ``-E`` reports them,
whether or not it imports sundial."""

from __future__ import annotations

import ast
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from sqlalchemy import Engine

from scheduler.metrics import SchedulerMetrics, private
from scheduler.runs.outcomes import record_outcome
from scheduler.store.models import RunState
from scheduler.timing.clock import Clock, utcnow

log = logging.getLogger("sundial.tracking")

RESULT_MAX_CHARS = 4096
TRACEBACK_MAX_CHARS = 8192
_WRAPPED = "ExceptionWithTraceback("


def _when(event: Mapping[str, Any]) -> datetime:
    return datetime.fromtimestamp(float(event.get("timestamp", 0)), UTC)


def _result(text: Any) -> Any:
    """Events carry ``repr(result)``; keep it as JSON when it is a plain literal."""
    if not isinstance(text, str):
        return text
    if len(text) > RESULT_MAX_CHARS:
        return {"truncated": text[:RESULT_MAX_CHARS]}
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def _error(event: Mapping[str, Any]) -> dict[str, Any]:
    exception = str(event.get("exception") or "")
    traceback = str(event.get("traceback") or "").strip()
    if exception.startswith(_WRAPPED) and traceback:
        # A hard time limit is reported wrapped by billiard; the traceback's last line
        # names the real one: "billiard.exceptions.TimeLimitExceeded: TimeLimitExceeded(1.5,)".
        qualified, _, exception = traceback.splitlines()[-1].partition(": ")
        exception = exception or qualified.rsplit(".", 1)[-1]
    kind, _, message = exception.partition("(")
    return {
        "type": kind.strip() or None,
        "message": message.rstrip(")").rstrip(",").strip("'\"") if message else exception,
        "traceback": traceback[-TRACEBACK_MAX_CHARS:] or None,
    }


def outcome(event: Mapping[str, Any]) -> tuple[RunState, dict[str, Any]] | None:
    """The run state and columns a task event implies, or None for events we ignore."""
    kind = event.get("type")
    when = _when(event)
    worker = event.get("hostname")
    if kind == "task-started":
        return RunState.STARTED, {"started_at": when, "worker": worker}
    # The worker that ended a run is recorded too: after a redelivery (a worker killed
    # mid-task, the message acknowledged late) it is not the one that started it.
    if kind == "task-succeeded":
        result = _result(event.get("result"))
        return RunState.SUCCEEDED, {"finished_at": when, "worker": worker, "result": result}
    if kind == "task-failed":
        return RunState.FAILED, {"finished_at": when, "worker": worker, "error": _error(event)}
    if kind == "task-retried":
        return RunState.RETRYING, {"error": _error(event)}
    if kind == "task-revoked":
        state = RunState.EXPIRED if event.get("expired") else RunState.REVOKED
        return state, {"finished_at": when}
    if kind == "task-rejected" and not event.get("requeue"):
        # A requeued message is delivered again (exactly-once's duplicate of a run still
        # running elsewhere, for one): not an outcome.
        return RunState.FAILED, {"finished_at": when, "error": {"type": "Rejected"}}
    return None


_BACKEND_STATES = {
    "STARTED": RunState.STARTED,
    "RETRY": RunState.RETRYING,
    "SUCCESS": RunState.SUCCEEDED,
    "FAILURE": RunState.FAILED,
    "REVOKED": RunState.REVOKED,
}


def result_lookup(app: Celery) -> Callable[[str], tuple[RunState, dict[str, Any]] | None]:
    """Reads a run's outcome from the configured Celery result backend, for runs whose
    events were missed (no leader listening, a broker hiccup)."""

    def lookup(run_id: str) -> tuple[RunState, dict[str, Any]] | None:
        result = app.AsyncResult(run_id)
        state = _BACKEND_STATES.get(result.state)
        if state is None:
            return None
        values: dict[str, Any] = {}
        if result.date_done is not None and state in (RunState.SUCCEEDED, RunState.FAILED):
            done = result.date_done
            values["finished_at"] = done if done.tzinfo else done.replace(tzinfo=UTC)
        if state is RunState.SUCCEEDED:
            values["result"] = _result(repr(result.result))
        elif state is RunState.FAILED:
            values["error"] = {
                "type": type(result.result).__name__,
                "message": str(result.result),
                "traceback": (result.traceback or "")[-TRACEBACK_MAX_CHARS:] or None,
            }
        return state, values

    return lookup


def apply_event(engine: Engine, event: Mapping[str, Any], now: datetime) -> bool:
    """Record one task event on its run; False when no run moved (unknown id, stale event)."""
    change = outcome(event)
    run_id = event.get("uuid")
    if change is None or not run_id:
        return False
    state, values = change
    present = {k: v for k, v in values.items() if v is not None}
    return record_outcome(engine, str(run_id), state, present, now)


class EventTracker:
    """Consumes task events in a thread of its own and writes them to the run rows."""

    def __init__(
        self,
        app: Celery,
        engine: Engine,
        active: Callable[[], bool],
        retry_s: float = 1.0,
        clock: Clock = utcnow,
        metrics: SchedulerMetrics | None = None,
    ) -> None:
        self._metrics = metrics or private()
        self._clock = clock
        self._app = app
        self._engine = engine
        self._active = active
        self._retry_s = retry_s
        self._stop = threading.Event()
        self._receiver: Any = None
        self._thread = threading.Thread(target=self._run, name="sundial-events", daemon=True)
        self.ready = threading.Event()

    def start(self) -> None:
        """Begin consuming."""
        self._thread.start()

    def stop(self) -> None:
        """Stop consuming and wait for the thread."""
        self._stop.set()
        if self._receiver is not None:
            self._receiver.should_stop = True
        self._thread.join(timeout=5)

    def _handle(self, event: dict[str, Any]) -> None:
        # Every replica listens so a new leader needs no warm-up; only the leader writes.
        if not self._active():
            return
        try:
            apply_event(self._engine, event, self._clock())
        except Exception as exc:  # the store is down: report; the event is not replayed
            self._metrics.store_error("tracking")
            log.error(
                "tracking: could not record %s for run %s: %s",
                event.get("type"),
                event.get("uuid"),
                exc,
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self._app.connection_for_read() as conn:
                    self._receiver = self._app.events.Receiver(conn, handlers={"*": self._handle})
                    self._receiver.should_stop = self._stop.is_set()
                    self.ready.set()
                    self._receiver.capture(limit=None, timeout=None, wakeup=False)
            except Exception as exc:  # broker unreachable: keep trying
                self.ready.clear()
                log.warning("tracking: event stream lost (%s); retrying", exc)
                self._stop.wait(self._retry_s)
