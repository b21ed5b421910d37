"""Bodies of ``POST /v1/apply``: a source's desired schedules in, the plan out."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.examples import SPEC_EXAMPLE
from api.schemas import (
    SCHEDULE_ID_PATTERN,
    ScheduleCreate,
    SchedulePublic,
    SchedulePut,
    Trigger,
    example_config,
)
from scheduler.apply import FieldChange, Plan, PlanEntry
from scheduler.triggers import DelaySpec

MAX_APPLY_ENTRIES = 10_000
# Fields of a schedule as the API returns it that no one sets: a file may carry them (an
# exported or fetched schedule), and apply ignores them.
READ_ONLY_FIELDS = frozenset(SchedulePublic.model_fields) - frozenset(SchedulePut.model_fields)


class ApplyEntry(ScheduleCreate):
    """A schedule in a file: the ``PUT`` body with its ``id``; read-only fields are ignored."""

    model_config = example_config(
        {**SPEC_EXAMPLE, "id": "nightly-report"}, extra="forbid", strict=True
    )

    id: str = Field(pattern=SCHEDULE_ID_PATTERN, examples=["nightly-report"])

    @model_validator(mode="before")
    @classmethod
    def _drop_read_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in READ_ONLY_FIELDS}
        return data

    @field_validator("trigger")
    @classmethod
    def _declarative(cls, value: Trigger) -> Trigger:
        if isinstance(value, DelaySpec):
            # A delay means "N seconds after this request": every apply would move it.
            raise ValueError("a delay trigger is relative to the request; use a date trigger")
        return value


class ApplyRequest(BaseModel):
    """Make the schedules ``source`` manages exactly ``schedules``, in one transaction."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "source": "billing-prod",
                    "schedules": [{**SPEC_EXAMPLE, "id": "nightly-report"}],
                    "prune": True,
                    "dry_run": True,
                }
            ]
        },
    )

    source: str = Field(
        pattern=SCHEDULE_ID_PATTERN,
        description="Who manages these schedules (a file set, a repository, a beat app).",
    )
    schedules: list[ApplyEntry] = Field(max_length=MAX_APPLY_ENTRIES)
    prune: bool = Field(
        default=False, description="Delete schedules of this source that are not listed."
    )
    dry_run: bool = Field(default=False, description="Plan and check everything; change nothing.")
    fire_times: int = Field(
        default=3, ge=0, le=20, description="Fire times shown before and after a timing change."
    )


class FieldChangePublic(BaseModel):
    """A field that differs."""

    field: str
    before: Any
    after: Any


class PlanEntryPublic(BaseModel):
    """What apply does to one schedule."""

    id: str
    changes: list[FieldChangePublic] = Field(description="Live → desired, field by field.")
    drift: list[FieldChangePublic] = Field(
        description="Last applied → live: edits made outside apply since."
    )
    adopted: bool = Field(description="A hand-made schedule this source now manages.")
    fire_times_before: list[datetime]
    fire_times_after: list[datetime]

    @classmethod
    def of(cls, entry: PlanEntry) -> PlanEntryPublic:
        """The public form of a plan entry."""

        def changes(items: list[FieldChange]) -> list[FieldChangePublic]:
            return [FieldChangePublic(field=c.field, before=c.before, after=c.after) for c in items]

        return cls(
            id=entry.id,
            changes=changes(entry.changes),
            drift=changes(entry.drift),
            adopted=entry.adopted,
            fire_times_before=entry.fire_times_before,
            fire_times_after=entry.fire_times_after,
        )


class ApplyResult(BaseModel):
    """The plan: what was (or, in a dry run, would be) created, changed, kept and pruned."""

    source: str
    dry_run: bool
    prune: bool
    created: list[PlanEntryPublic]
    changed: list[PlanEntryPublic]
    unchanged: list[PlanEntryPublic]
    pruned: list[PlanEntryPublic]
    orphaned: list[PlanEntryPublic] = Field(
        description="Managed by this source, not listed, kept because prune is off."
    )

    @classmethod
    def of(cls, plan: Plan, *, dry_run: bool, prune: bool) -> ApplyResult:
        """The public form of a plan."""

        def entries(items: list[PlanEntry]) -> list[PlanEntryPublic]:
            return [PlanEntryPublic.of(e) for e in items]

        return cls(
            source=plan.source,
            dry_run=dry_run,
            prune=prune,
            created=entries(plan.created),
            changed=entries(plan.changed),
            unchanged=entries(plan.unchanged),
            pruned=entries(plan.pruned),
            orphaned=entries(plan.orphaned),
        )
