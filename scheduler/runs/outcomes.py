"""What a run's outcome sets in motion: the schedule's counters, a retry with backoff, and
pausing a schedule that keeps failing. Called by the leader for every task event."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from scheduler.firing.bulk import insert_runs, new_run
from scheduler.runs.alerts import AlertKind, raise_alert
from scheduler.store.db import update_one_returning
from scheduler.store.history import SCHEDULER_ACTOR, Audit, Kind, record_change
from scheduler.store.models import RunState, RunTrigger, ScheduleState, run_id_for, runs, schedules
from scheduler.store.schedule_arming import paused_values
from scheduler.store.schedule_spec import spec_of

FINAL = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.REVOKED, RunState.EXPIRED})
IN_FLIGHT = (
    RunState.PENDING,
    RunState.DISPATCHED,
    RunState.STARTED,
    RunState.RETRYING,
)
# A run only moves forward: an event arriving late never undoes a final state.
_MAY_FOLLOW: dict[RunState, tuple[RunState, ...]] = {
    RunState.STARTED: (RunState.PENDING, RunState.DISPATCHED, RunState.RETRYING),
    RunState.RETRYING: (RunState.PENDING, RunState.DISPATCHED, RunState.STARTED),
}


def backoff(policy: Mapping[str, Any], attempt: int) -> timedelta:
    """Delay before attempt ``attempt + 1``: doubling from ``backoff_seconds``, capped."""
    base = float(policy.get("backoff_seconds", 0))
    cap = float(policy.get("backoff_max_seconds") or base * 2 ** (attempt - 1))
    return timedelta(seconds=min(base * 2 ** (attempt - 1), cap))


def record_outcome(
    engine: Engine, run_id: str, state: RunState, values: Mapping[str, Any], now: datetime
) -> bool:
    """Move a run to ``state``; False when it is unknown or already past that point."""
    allowed = _MAY_FOLLOW.get(state, IN_FLIGHT)
    with engine.begin() as conn:
        moved = update_one_returning(
            conn,
            runs,
            [runs.c.id == run_id, runs.c.state.in_([s.value for s in allowed])],
            {"state": state.value, **values},
            [
                runs.c.id,
                runs.c.schedule_id,
                runs.c.scheduled_for,
                runs.c.attempt,
                runs.c.task,
                runs.c.schedule_version,
            ],
        )
        if moved is None:
            return False
        if state in FINAL:
            _finish(conn, {**moved._mapping, "error": values.get("error")}, state, now)
    return True


def _finish(conn: Connection, run: Mapping[Any, Any], state: RunState, now: datetime) -> None:
    schedule = conn.execute(
        select(
            schedules.c.retry,
            schedules.c.pause_after_failures,
            schedules.c.consecutive_failures,
            schedules.c.failure_count,
            schedules.c.state,
        )
        .where(schedules.c.id == run["schedule_id"])
        .with_for_update()
    ).first()
    if schedule is None:
        return
    changes: dict[str, Any] = {"last_run_state": state.value}
    if state is RunState.SUCCEEDED:
        changes["consecutive_failures"] = 0
    elif state is RunState.FAILED:
        policy = schedule.retry
        if policy and run["attempt"] < int(policy["max_attempts"]):
            _schedule_retry(conn, run, policy, now)
            changes["last_run_state"] = RunState.RETRYING.value
        else:
            failures = schedule.consecutive_failures + 1
            changes.update(consecutive_failures=failures, failure_count=schedule.failure_count + 1)
            if policy:
                _note(
                    conn,
                    run,
                    f"final failure: attempt {run['attempt']} of {policy['max_attempts']}",
                )
            _alert_failure(conn, run, now)
            limit = schedule.pause_after_failures
            if limit and failures >= limit and schedule.state == ScheduleState.ACTIVE:
                reason = f"paused after {failures} consecutive failed runs"
                changes.update(paused_values(reason, now))
                record_auto_pause(conn, run["schedule_id"], reason, now, Kind.AUTO_PAUSE)
    conn.execute(update(schedules).where(schedules.c.id == run["schedule_id"]).values(**changes))


def _alert_failure(conn: Connection, run: Mapping[Any, Any], now: datetime) -> None:
    error = run.get("error") or {}
    what = ": ".join(str(p) for p in (error.get("type"), error.get("message")) if p)
    raise_alert(
        conn,
        schedule_id=run["schedule_id"],
        kind=AlertKind.FAILURE,
        subject=run["id"],
        message=f"schedule {run['schedule_id']}: the run of {run['scheduled_for'].isoformat()} "
        f"failed for good (attempt {run['attempt']})" + (f": {what}"[:500] if what else ""),
        now=now,
        scheduled_for=run["scheduled_for"],
        run_id=run["id"],
    )


def record_auto_pause(
    conn: Connection, schedule_id: str, reason: str, now: datetime, kind: str
) -> None:
    """History and an alert for a pause the scheduler makes (before the row is updated)."""
    row = dict(conn.execute(select(schedules).where(schedules.c.id == schedule_id)).one()._mapping)
    version = row["version"] + 1
    record_change(
        conn,
        Audit(SCHEDULER_ACTOR, reason),
        kind,
        now,
        schedule_id=schedule_id,
        version=version,
        state=ScheduleState.PAUSED.value,
        before=spec_of(row),
        after=spec_of({**row, "state": ScheduleState.PAUSED.value}),
    )
    raise_alert(
        conn,
        schedule_id=schedule_id,
        kind=AlertKind.PAUSED,
        subject=f"v{version}",
        message=f"schedule {schedule_id} {reason}",
        now=now,
    )


def _note(conn: Connection, run: Mapping[Any, Any], reason: str) -> None:
    conn.execute(
        update(runs)
        .where(
            runs.c.schedule_id == run["schedule_id"],
            runs.c.scheduled_for == run["scheduled_for"],
            runs.c.attempt == run["attempt"],
        )
        .values(reason=reason)
    )


def _schedule_retry(
    conn: Connection, run: Mapping[Any, Any], policy: Mapping[str, Any], now: datetime
) -> None:
    attempt = run["attempt"] + 1
    delay = backoff(policy, run["attempt"])
    insert_runs(
        conn,
        [
            new_run(
                run_id=run_id_for(run["schedule_id"], run["scheduled_for"], attempt),
                schedule_id=run["schedule_id"],
                scheduled_for=run["scheduled_for"],
                task=run["task"],
                trigger=RunTrigger.RETRY,
                now=now,
                attempt=attempt,
                reason=f"attempt {attempt} of {policy['max_attempts']}, "
                f"after {delay.total_seconds():g}s backoff",
                due_at=now + delay,
                schedule_version=run["schedule_version"],
            )
        ],
    )
    _note(conn, run, f"failed; retrying as attempt {attempt}")
