"""Success deadlines: a fire of a schedule with ``expect_success_within_seconds`` that has
no succeeded attempt that long after its scheduled time raises an alert, once.

Fires skipped on purpose (a calendar, coalescing, the overlap policy) expect nothing; a fire
recorded missed, failed, expired, revoked or still running past its deadline is a breach.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from scheduler.runs.alerts import AlertKind, raise_alert
from scheduler.store.models import RunState, RunTrigger, alerts, run_id_for, runs, schedules


def check_deadlines(engine: Engine, since: datetime, now: datetime) -> int:
    """Raise an alert for each fire whose deadline fell in ``(since, now]`` unmet."""
    limit = schedules.c.expect_success_within_seconds
    with engine.begin() as conn:
        longest = conn.execute(select(limit).order_by(limit.desc()).limit(1)).scalar()
        if longest is None:
            return 0
        window_start = since - timedelta(seconds=longest)
        found = conn.execute(
            select(
                runs.c.id,
                runs.c.schedule_id,
                runs.c.scheduled_for,
                runs.c.attempt,
                runs.c.trigger,
                runs.c.state,
                runs.c.finished_at,
                limit.label("within"),
            )
            .join(schedules, schedules.c.id == runs.c.schedule_id)
            .where(
                limit.is_not(None), runs.c.scheduled_for > window_start, runs.c.scheduled_for <= now
            )
            .order_by(runs.c.schedule_id, runs.c.scheduled_for, runs.c.attempt)
        ).mappings()
        fires: dict[tuple[str, datetime], list[Any]] = defaultdict(list)
        for run in found:
            fires[run["schedule_id"], run["scheduled_for"]].append(run)
        raised = set(
            conn.execute(
                select(alerts.c.subject).where(
                    alerts.c.kind == AlertKind.DEADLINE.value,
                    alerts.c.scheduled_for > window_start,
                )
            ).scalars()
        )
        count = 0
        for (schedule_id, scheduled_for), attempts in fires.items():
            first = attempts[0]
            if first["trigger"] != RunTrigger.SCHEDULE or first["state"] == RunState.SKIPPED:
                continue
            deadline = scheduled_for + timedelta(seconds=first["within"])
            subject = run_id_for(schedule_id, scheduled_for)
            if not since < deadline <= now or subject in raised:
                continue
            if any(
                r["state"] == RunState.SUCCEEDED and r["finished_at"] <= deadline for r in attempts
            ):
                continue
            latest = attempts[-1]
            count += raise_alert(
                conn,
                schedule_id=schedule_id,
                kind=AlertKind.DEADLINE,
                subject=subject,
                message=f"schedule {schedule_id}: the fire of {scheduled_for.isoformat()} has "
                f"not succeeded within {first['within']:g}s (run state: {latest['state']})",
                now=now,
                scheduled_for=scheduled_for,
                run_id=latest["id"],
            )
    return count
