"""The SQL schema (one MetaData, owned by Alembic) and the states stored in it."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy import false as sa_false

from scheduler.store.db import UTCDateTime

# SQLite numbers rows only through an INTEGER PRIMARY KEY; elsewhere ids are 64-bit.
SERIAL = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class ScheduleState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"


class RunState(StrEnum):
    PENDING = "pending"
    DISPATCHED = "dispatched"
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRYING = "retrying"
    SKIPPED = "skipped"
    MISSED = "missed"
    EXPIRED = "expired"
    REVOKED = "revoked"


class RunTrigger(StrEnum):
    SCHEDULE = "schedule"
    MANUAL = "manual"
    RETRY = "retry"
    BACKFILL = "backfill"


class Overlap(StrEnum):
    ALLOW = "allow"
    SKIP = "skip"
    BUFFER_ONE = "buffer_one"
    CANCEL_PREVIOUS = "cancel_previous"


schedules = Table(
    "schedules",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("task", String(255), nullable=False, index=True),
    Column("args", JSON, nullable=False),
    Column("kwargs", JSON, nullable=False),
    Column("trigger", JSON, nullable=False),
    Column("queue", String(255), nullable=False),
    Column("priority", Integer),
    Column("expires_seconds", Float),
    Column("misfire_grace_seconds", Float),
    Column("coalesce", Boolean, nullable=False),
    Column("overlap", String(32), nullable=False),
    Column("jitter_seconds", Float, nullable=False),
    Column("retry", JSON),
    Column("pause_after_failures", Integer),
    Column("start_at", UTCDateTime),
    Column("end_at", UTCDateTime),
    Column("state", String(16), nullable=False, index=True),
    Column("state_reason", Text),
    Column("description", Text, nullable=False),
    Column("labels", JSON, nullable=False),
    # Names of exclusion calendars (a list; NULL = none) and what an excluded fire does.
    Column("exclude_calendars", JSON),
    Column("on_excluded", String(16), nullable=False, server_default="skip"),
    # A run not succeeded this long after its scheduled time raises an alert.
    Column("expect_success_within_seconds", Float),
    # The trigger's next fire time, and the instant the leader publishes it (plus jitter).
    # Both are NULL unless the schedule is active: the due scan reads only live rows.
    Column("next_run_at", UTCDateTime),
    Column("next_due_at", UTCDateTime, index=True),
    Column("last_run_at", UTCDateTime),
    Column("last_run_state", String(16)),
    # Counters of the run history, kept by the leader as runs are recorded and finish.
    Column("run_count", Integer, nullable=False, server_default="0"),
    Column("failure_count", Integer, nullable=False, server_default="0"),
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
    Column("missed_count", Integer, nullable=False, server_default="0"),
    Column("skipped_count", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("version", Integer, nullable=False),
    # Set by `apply`: the source (a file set) that manages the schedule, and the user-set
    # fields it last applied, so a hand edit since then shows as drift. NULL = hand-made.
    Column("managed_by", String(128), index=True),
    Column("applied", JSON),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column(
        "schedule_id",
        String(128),
        ForeignKey("schedules.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("scheduled_for", UTCDateTime, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("trigger", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("task", String(255), nullable=False),
    # The fencing token of the leader that recorded the fire: an audit trail for failovers.
    Column("fencing_token", BigInteger),
    Column("reason", Text),
    # A pending run is published once this has passed (retry backoff, backfill pacing);
    # NULL means as soon as possible.
    Column("due_at", UTCDateTime),
    # Published only while no other run of its schedule is in flight, one at a time:
    # a buffer_one fire, or a backfill asked to run one after another.
    Column("hold_while_busy", Boolean, nullable=False, server_default=sa_false()),
    Column("created_at", UTCDateTime, nullable=False),
    Column("dispatched_at", UTCDateTime),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("worker", String(255)),
    Column("result", JSON),
    Column("error", JSON),
    # The schedule's version when the fire was recorded (its history holds that spec).
    Column("schedule_version", Integer),
    # One fire of a schedule is one row; this is the guarantee, the lease an optimisation.
    UniqueConstraint("schedule_id", "scheduled_for", "attempt"),
    Index("ix_runs_state_scheduled_for", "state", "scheduled_for"),
)

leader = Table(
    "scheduler_leader",
    metadata,
    Column("name", String(32), primary_key=True),
    # Incremented for every leadership term and never reset: the fencing token.
    Column("fencing_token", BigInteger, nullable=False),
    Column("holder", String(64)),
    Column("hostname", String(255)),
    Column("pid", Integer),
    Column("since", UTCDateTime),
    Column("lease_expires_at", UTCDateTime),
)

replicas = Table(
    "scheduler_replicas",
    metadata,
    Column("replica_id", String(64), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column(
        "schedule_id",
        String(128),
        ForeignKey("schedules.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("created_at", UTCDateTime, nullable=False),
)

# One row per apply source; an apply locks its row, so two applies of one source never
# interleave.
apply_sources = Table(
    "apply_sources",
    metadata,
    Column("source", String(128), primary_key=True),
    Column("applied_at", UTCDateTime, nullable=False),
)


class ExcludedPolicy(StrEnum):
    """What a fire that falls in an exclusion calendar does."""

    SKIP = "skip"
    NEXT_ALLOWED = "next_allowed"


# Every change to a schedule (and to a calendar), with who made it and why. No foreign key:
# a deleted schedule's history stays. ``spec`` is the whole specification of ``version``.
changes = Table(
    "changes",
    metadata,
    Column("id", SERIAL, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False, index=True),
    Column("schedule_id", String(128)),
    Column("calendar", String(128), index=True),
    Column("kind", String(32), nullable=False, index=True),
    Column("actor", String(255), nullable=False, index=True),
    Column("reason", Text),
    Column("version", Integer),
    Column("state", String(16)),
    Column("spec", JSON(none_as_null=True)),
    Column("diff", JSON(none_as_null=True)),
    Column("details", JSON(none_as_null=True)),
    Index("ix_changes_schedule_id_id", "schedule_id", "id"),
)

# One row per leadership term, so a gap without a leader can be shown afterwards. The end
# is recorded on release, or inferred when the next term starts (the lease's last expiry).
leader_terms = Table(
    "leader_terms",
    metadata,
    Column("fencing_token", BigInteger, primary_key=True, autoincrement=False),
    Column("holder", String(64), nullable=False),
    Column("hostname", String(255)),
    Column("pid", Integer),
    Column("started_at", UTCDateTime, nullable=False, index=True),
    Column("ended_at", UTCDateTime),
    Column("end_reason", String(32)),
)

calendars = Table(
    "calendars",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("description", Text, nullable=False),
    Column("rules", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Which schedules name which calendars: kept with the schedule's own list, so that a
# calendar in use cannot be deleted and a changed one re-arms exactly its schedules.
schedule_calendars = Table(
    "schedule_calendars",
    metadata,
    Column(
        "schedule_id",
        String(128),
        ForeignKey("schedules.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("calendar", String(128), ForeignKey("calendars.name"), primary_key=True, index=True),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", SERIAL, primary_key=True, autoincrement=True),
    Column("schedule_id", String(128), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    # What the alert is about (a fire's run id, a failed run, a paused version): raised once.
    Column("subject", String(64), nullable=False),
    Column("scheduled_for", UTCDateTime),
    Column("run_id", String(64)),
    Column("message", Text, nullable=False),
    Column("raised_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
    Column("resolution", Text),
    # Webhook delivery: the event waiting to be sent ('raised' or 'resolved'), if any.
    Column("notify", String(16), index=True),
    Column("notify_attempts", Integer, nullable=False, server_default="0"),
    Column("notify_next_at", UTCDateTime),
    Column("notified_at", UTCDateTime),
    Column("notify_error", Text),
    UniqueConstraint("schedule_id", "kind", "subject"),
)

# The dispatch contract's message headers; tasks read them from ``self.request``.
HEADER_SCHEDULE_ID = "sundial_schedule_id"
HEADER_SCHEDULED_FOR = "sundial_scheduled_for"
HEADER_RUN_ID = "sundial_run_id"

LEADER_ROW = "leader"
_RUN_ID_NAMESPACE = uuid.UUID("6f9b1c2e-5d1a-4f55-9a7e-2b8d0c3e7a41")


def run_id_for(schedule_id: str, scheduled_for: datetime, attempt: int = 1) -> str:
    """The Celery task id of a fire: the same fire always gets the same id."""
    name = f"{schedule_id}\x00{scheduled_for.isoformat()}"
    if attempt != 1:
        name += f"\x00{attempt}"
    return str(uuid.uuid5(_RUN_ID_NAMESPACE, name))
