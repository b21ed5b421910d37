"""An apply plan for people: what is created, changed (field by field), pruned, and drift."""

from __future__ import annotations

import json
from typing import Any

import click
from pydantic_core import to_jsonable_python

from sundial.client import ApplyPlan, PlanEntry
from sundial.console.render import absolute


def show(plan: ApplyPlan) -> None:
    """Print the plan, then one summary line."""
    _calendars(plan)
    for entry in plan.created:
        click.secho(f"+ {entry.id}: create", fg="green")
        _fire_times("next fires", entry.fire_times_after)
    for entry in plan.changed:
        adopted = " (adopting a hand-made schedule)" if entry.adopted else ""
        click.secho(f"~ {entry.id}: change{adopted}", fg="yellow")
        for change in entry.changes:
            for line in change_lines(change.field, change.before, change.after):
                click.echo(f"    {line}")
        if entry.fire_times_before or entry.fire_times_after:
            _fire_times("next fires before", entry.fire_times_before)
            _fire_times("next fires after ", entry.fire_times_after)
        _drift(entry)
    for entry in plan.pruned:
        click.secho(f"- {entry.id}: {'would be ' if plan.dry_run else ''}pruned", fg="red")
        _drift(entry)
    for entry in plan.orphaned:
        click.echo(
            f"? {entry.id}: managed by {plan.source!r} but not in the files; "
            "kept (--prune deletes it)"
        )
    for entry in plan.unchanged:
        if entry.adopted:
            click.echo(f"= {entry.id}: unchanged, now managed by {plan.source!r}")
    click.echo(summary(plan))


def summary(plan: ApplyPlan) -> str:
    """``3 created, 1 changed, 0 pruned, 12 unchanged`` or that nothing changes."""
    if not plan.changes_anything:
        total = len(plan.unchanged)
        noun = "schedule" if total == 1 else "schedules"
        return f"No changes: {total} {noun} of {plan.source!r} already match."
    verb = "would be" if plan.dry_run else "were"
    counts = (
        f"{len(plan.created)} created, {len(plan.changed)} changed, "
        f"{len(plan.pruned)} pruned, {len(plan.unchanged)} unchanged"
    )
    drifted = sum(1 for e in (*plan.changed, *plan.pruned) if e.drift)
    drift = f"; {drifted} had drifted from the last apply" if drifted else ""
    tail = " (dry run: nothing changed)" if plan.dry_run else ""
    calendars = plan.calendars
    made = (
        f" Calendars {verb}: {len(calendars.created)} created, {len(calendars.changed)} "
        f"changed, {len(calendars.unchanged)} unchanged."
        if calendars.created or calendars.changed
        else ""
    )
    return f"Schedules of {plan.source!r} {verb}: {counts}{drift}.{made}{tail}"


def _calendars(plan: ApplyPlan) -> None:
    for entry in plan.calendars.created:
        click.secho(f"+ calendar {entry.name}: create", fg="green")
    for entry in plan.calendars.changed:
        click.secho(f"~ calendar {entry.name}: change", fg="yellow")
        for change in entry.changes:
            for line in change_lines(change.field, change.before, change.after):
                click.echo(f"    {line}")
    if plan.calendars.rearmed:
        shown = ", ".join(plan.calendars.rearmed[:10])
        more = " …" if len(plan.calendars.rearmed) > 10 else ""
        click.echo(f"  re-armed by the calendar changes: {shown}{more}")


def change_lines(name: str, before: Any, after: Any) -> list[str]:
    """``trigger.expression: "0 3 * * *" → "30 4 * * *"``: objects member by member."""
    if isinstance(before, dict) and isinstance(after, dict):
        lines: list[str] = []
        for key in [*before, *(k for k in after if k not in before)]:
            if before.get(key) != after.get(key):
                lines.extend(change_lines(f"{name}.{key}", before.get(key), after.get(key)))
        return lines
    return [f"{name}: {_value(before)} → {_value(after)}"]


def _drift(entry: PlanEntry) -> None:
    for change in entry.drift:
        for line in change_lines(change.field, change.before, change.after):
            click.secho(f"    drift since the last apply: {line}", fg="magenta")


def _fire_times(title: str, times: list[Any]) -> None:
    if times:
        click.echo(f"    {title}: {', '.join(absolute(t) for t in times)}")


def _value(value: Any) -> str:
    return json.dumps(to_jsonable_python(value), separators=(",", ":"), sort_keys=True)
