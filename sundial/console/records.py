"""Why and who, from the command line: a schedule's fire timeline, its change history, the
audit of every change, restoring a version, and alerts."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from itertools import islice
from typing import TypeVar

import click

from sundial.client import Alert, Change, TimelineEntry
from sundial.console import render
from sundial.console.options import api_client, connection_options, output_option, reason_option
from sundial.console.parsing import moment
from sundial.console.plan import change_lines
from sundial.console.render import absolute, emit, now_utc, when

T = TypeVar("T")
limit_option = click.option(
    "--limit",
    type=click.IntRange(1, 100_000),
    default=100,
    show_default=True,
    help="At most this many lines.",
)
_TIME_HELP = "an RFC 3339 time, or a duration ago such as 2h or 7d"


def _bounded(items: Iterable[T], limit: int) -> tuple[list[T], bool]:
    """The first ``limit`` items, and whether there were more."""
    taken = list(islice(items, limit + 1))
    return taken[:limit], len(taken) > limit


def _window(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    now = now_utc()
    start = moment(since, "--since", now) if since else None
    end = moment(until, "--until", now) if until else None
    return start, end


@click.command("timeline")
@click.argument("schedule_id")
@click.option("--since", metavar="TIME", help=f"Window start: {_TIME_HELP} (default: 1 day).")
@click.option("--until", metavar="TIME", help=f"Window end, exclusive: {_TIME_HELP} (now).")
@limit_option
@output_option()
@connection_options
def timeline_command(
    schedule_id: str,
    since: str | None,
    until: str | None,
    limit: int,
    output: str,
    url: str,
    api_key: str | None,
) -> None:
    """Every instant SCHEDULE_ID planned in a window, and what became of it: its run, or
    why there is none (paused, calendar, coalesced, late, no leader, not yet due…)."""
    start, end = _window(since, until)
    with api_client(url, api_key) as client:
        zone = render.zone_of(client.get(schedule_id).trigger)
        entries, more = _bounded(
            client.iter_timeline(schedule_id, since=start, until=end, page_size=min(limit, 500)),
            limit,
        )
    if output != "table":
        emit(entries, output)
    elif not entries:
        click.echo("No planned instants in this window.", err=True)
    else:
        _timeline_table(entries, zone)
    if more:
        click.echo(
            f"(the first {limit}; narrow the window with --since/--until or raise --limit)",
            err=True,
        )


def _timeline_table(entries: list[TimelineEntry], zone: str) -> None:
    utc = zone == "UTC"
    columns = (("TIME (UTC)",) if utc else (f"TIME ({zone})", "UTC")) + (
        "STATUS",
        "CAUSE",
        "DETAIL",
    )
    rows = []
    for entry in entries:
        times = (
            (absolute(entry.scheduled_for),)
            if utc
            else (render.local(entry.scheduled_for, zone), absolute(entry.scheduled_for))
        )
        rows.append((*times, entry.status, entry.cause or "-", _detail(entry)))
    render.table(None, columns, rows)


def _detail(entry: TimelineEntry) -> str:
    """Why, in a line; a pause says who and why with its time to the second."""
    if entry.paused is not None:
        reason = f": {entry.paused.reason}" if entry.paused.reason else ""
        return f"paused by {entry.paused.actor} since {absolute(entry.paused.since)}{reason}"
    if entry.detail:
        return entry.detail
    error = entry.run.error if entry.run is not None else None
    if isinstance(error, dict):
        return f"{error.get('type', 'error')}: {error.get('message', '')}"[:160]
    return "-"


@click.command("history")
@click.argument("schedule_id")
@limit_option
@output_option()
@connection_options
def history_command(
    schedule_id: str, limit: int, output: str, url: str, api_key: str | None
) -> None:
    """Every change to SCHEDULE_ID, newest first: who, when, why, and what changed (kept
    after it is deleted; restore a version with `sundial restore`)."""
    with api_client(url, api_key) as client:
        changes, more = _bounded(client.iter_history(schedule_id, page_size=min(limit, 500)), limit)
    _changes(changes, output, more, limit, subject=False)


@click.command("audit")
@click.option("--actor", multiple=True, help="Only changes by this key name; repeatable.")
@click.option("--kind", multiple=True, help="Only this kind (update, pause, …); repeatable.")
@click.option("--schedule", "schedule_id", help="Only changes to this schedule.")
@click.option("--calendar", help="Only changes to this calendar.")
@click.option("--since", metavar="TIME", help=f"Changes at or after: {_TIME_HELP}.")
@click.option("--until", metavar="TIME", help=f"Changes before: {_TIME_HELP}.")
@limit_option
@output_option()
@connection_options
def audit_command(
    actor: tuple[str, ...],
    kind: tuple[str, ...],
    schedule_id: str | None,
    calendar: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    output: str,
    url: str,
    api_key: str | None,
) -> None:
    """Every change to any schedule or calendar, newest first, filtered."""
    start, end = _window(since, until)
    with api_client(url, api_key) as client:
        found = client.iter_audit(
            page_size=min(limit, 500),
            actor=actor,
            kind=kind,
            schedule_id=schedule_id,
            calendar=calendar,
            since=start,
            until=end,
        )
        changes, more = _bounded(found, limit)
    _changes(changes, output, more, limit, subject=True)


def _changes(changes: list[Change], output: str, more: bool, limit: int, subject: bool) -> None:
    if output != "table":
        emit(changes, output)
    elif not changes:
        click.echo("No changes recorded.", err=True)
    else:
        columns = ("WHEN", *(("SUBJECT",) if subject else ()), "KIND", "ACTOR", "VERSION")
        rows = (
            (
                absolute(c.at),
                *((_subject(c),) if subject else ()),
                c.kind,
                c.actor,
                str(c.version) if c.version is not None else "-",
                c.reason or "-",
                _what(c),
            )
            for c in changes
        )
        render.table(None, (*columns, "REASON", "WHAT"), rows)
    if more:
        click.echo(f"(the newest {limit}; raise --limit for more)", err=True)


def _subject(change: Change) -> str:
    if change.calendar is not None:
        return f"calendar {change.calendar}"
    return change.schedule_id or "-"


def _what(change: Change) -> str:
    """The change in a line: the fields it changed, or what it did."""
    parts: list[str] = []
    for name, values in (change.diff or {}).items():
        parts.extend(change_lines(name, values.get("from"), values.get("to")))
    details = dict(change.details or {})
    if "restored_version" in details:
        parts.insert(0, f"restored version {details.pop('restored_version')}")
    parts.extend(f"{k}={render.compact(v)}" for k, v in details.items())
    if not parts and change.kind in ("create", "calendar_create", "baseline"):
        parts.append("created" if change.kind != "baseline" else "recorded at upgrade")
    return "; ".join(parts) or "-"


@click.command("restore")
@click.argument("schedule_id")
@click.argument("version", type=click.IntRange(1))
@reason_option
@output_option()
@connection_options
def restore_command(
    schedule_id: str,
    version: int,
    reason: str | None,
    output: str,
    url: str,
    api_key: str | None,
) -> None:
    """Make VERSION of SCHEDULE_ID current again (as a new version; a deleted schedule is
    made again). `sundial history` lists the versions."""
    with api_client(url, api_key) as client:
        schedule = client.restore(schedule_id, version, reason=reason)
    if output != "table":
        emit(schedule, output)
        return
    click.echo(
        f"restored {schedule.id} to version {version}, now version {schedule.version} "
        f"({schedule.state}); next run {when(schedule.next_run_at, now_utc())}"
    )


@click.command("alerts")
@click.option("--open", "open_only", is_flag=True, help="Only alerts not yet resolved.")
@click.option("--schedule", "schedule_id", help="Only this schedule's alerts.")
@click.option(
    "--kind",
    multiple=True,
    type=click.Choice(["deadline", "failure", "paused"]),
    help="Only this kind; repeatable.",
)
@limit_option
@output_option()
@connection_options
def alerts_command(
    open_only: bool,
    schedule_id: str | None,
    kind: tuple[str, ...],
    limit: int,
    output: str,
    url: str,
    api_key: str | None,
) -> None:
    """Alerts, newest first: missed success deadlines, final failures, automatic pauses."""
    state = "open" if open_only else None
    with api_client(url, api_key) as client:
        found = client.iter_alerts(
            page_size=min(limit, 500), schedule_id=schedule_id, kind=kind, state=state
        )
        alerts, more = _bounded(found, limit)
    if output != "table":
        emit(alerts, output)
    elif not alerts:
        click.echo("No open alerts." if open_only else "No alerts.", err=True)
    else:
        render.table(
            None,
            ("ID", "RAISED", "SCHEDULE", "KIND", "STATE", "MESSAGE"),
            (
                (str(a.id), absolute(a.raised_at), a.schedule_id, a.kind, _state(a), a.message)
                for a in alerts
            ),
        )
    if more:
        click.echo(f"(the newest {limit}; raise --limit for more)", err=True)


def _state(alert: Alert) -> str:
    if alert.open:
        return "open"
    how = f" ({alert.resolution})" if alert.resolution else ""
    return f"resolved {absolute(alert.resolved_at)}{how}"


COMMANDS = (timeline_command, history_command, audit_command, restore_command, alerts_command)
