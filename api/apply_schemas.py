"""Bodies of ``POST /v1/apply``: a source's desired schedules in, the plan out."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.calendar_schemas import CalendarPublic
from api.examples import SPEC_EXAMPLE
from api.field_schemas import SCHEDULE_ID_PATTERN, Trigger, example_config
from api.schedule_schemas import ScheduleCreate, SchedulePublic, SchedulePut
from scheduler.store.apply import CalendarPlan, FieldChange, Plan, PlanEntry
from scheduler.store.calendar_store import CalendarSpec
from scheduler.timing.triggers import DelaySpec

MAX_APPLY_ENTRIES = 10_000
# Fields of a schedule as the API returns it that no one sets: a file may carry them (an
# exported or fetched schedule), and apply ignores them.
READ_ONLY_FIELDS = frozenset(SchedulePublic.model_fields) - frozenset(SchedulePut.model_fields)
CALENDAR_READ_ONLY_FIELDS = frozenset(CalendarPublic.model_fields) - {
    "name",
    *CalendarSpec.model_fields,
}
_CALENDAR_EXAMPLE: dict[str, Any] = {
    "name": "holidays-de-by",
    "rules": [{"type": "holidays", "country": "DE", "subdivision": "BY"}],
}


def _without(data: Any, fields: frozenset[str]) -> Any:
    """A document without ``fields`` (read-only fields an exported document may carry)."""
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if k not in fields}
    return data


class ApplyEntry(ScheduleCreate):
    """A schedule in a file: the ``PUT`` body with its ``id``; read-only fields are ignored."""

    model_config = example_config(
        {**SPEC_EXAMPLE, "id": "nightly-report"}, extra="forbid", strict=True
    )

    id: str = Field(pattern=SCHEDULE_ID_PATTERN, examples=["nightly-report"])

    @model_validator(mode="before")
    @classmethod
    def _drop_read_only(cls, data: Any) -> Any:
        return _without(data, READ_ONLY_FIELDS)

    @field_validator("trigger")
    @classmethod
    def _declarative(cls, value: Trigger) -> Trigger:
        if isinstance(value, DelaySpec):
            # A delay means "N seconds after this request": every apply would move it.
            raise ValueError("a delay trigger is relative to the request; use a date trigger")
        return value


class ApplyCalendar(CalendarSpec):
    """An exclusion calendar in a file: the ``PUT /v1/calendars/{name}`` body with its
    ``name``; read-only fields (``version``, ``used_by``, …) are ignored."""

    model_config = example_config(_CALENDAR_EXAMPLE, extra="forbid", strict=True)

    name: str = Field(pattern=SCHEDULE_ID_PATTERN, examples=["holidays-de-by"])

    @model_validator(mode="before")
    @classmethod
    def _drop_read_only(cls, data: Any) -> Any:
        return _without(data, CALENDAR_READ_ONLY_FIELDS)

    def spec(self) -> CalendarSpec:
        """The calendar without its name."""
        return CalendarSpec(description=self.description, rules=self.rules)


class ApplyRequest(BaseModel):
    """Make the schedules ``source`` manages exactly ``schedules``, in one transaction."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "source": "billing-prod",
                    "calendars": [_CALENDAR_EXAMPLE],
                    "schedules": [
                        {
                            **SPEC_EXAMPLE,
                            "id": "nightly-report",
                            "exclude_calendars": ["holidays-de-by"],
                        }
                    ],
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
    calendars: list[ApplyCalendar] = Field(
        default_factory=list,
        max_length=1000,
        description="Exclusion calendars to create or replace first (in the same "
        "transaction), so that the schedules can name them. Never pruned.",
    )
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


class CalendarEntryPublic(BaseModel):
    """What apply does to one calendar."""

    name: str
    changes: list[FieldChangePublic] = Field(description="Live → desired, field by field.")


class CalendarPlanPublic(BaseModel):
    """The calendars apply created, changed and left as they were."""

    created: list[CalendarEntryPublic]
    changed: list[CalendarEntryPublic]
    unchanged: list[CalendarEntryPublic]
    rearmed: list[str] = Field(description="Schedules re-armed because a calendar changed.")

    @classmethod
    def of(cls, plan: CalendarPlan) -> CalendarPlanPublic:
        """The public form of a calendar plan."""
        return cls(
            created=[CalendarEntryPublic(name=n, changes=[]) for n in plan.created],
            changed=[
                CalendarEntryPublic(
                    name=name,
                    changes=[
                        FieldChangePublic(field=c.field, before=c.before, after=c.after)
                        for c in changes
                    ],
                )
                for name, changes in plan.changed.items()
            ],
            unchanged=[CalendarEntryPublic(name=n, changes=[]) for n in plan.unchanged],
            rearmed=plan.rearmed,
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
    calendars: CalendarPlanPublic

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
            calendars=CalendarPlanPublic.of(plan.calendars),
        )
