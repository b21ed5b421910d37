"""Ad-hoc client subcommands: list, get, create, delete, pause, resume, trigger, runs, preview."""

from __future__ import annotations

from typing import Any

import click

from sundial.client import Run, Schedule, ScheduleSpec
from sundial.console import render
from sundial.console.options import api_client, connection_options, output_option, reason_option
from sundial.console.parsing import (
    json_value,
    label_pairs,
    timestamp,
    trigger_from,
    trigger_options,
)
from sundial.console.render import absolute, emit, now_utc, when


@click.command("list")
@click.option("--task", help="Only schedules of this task.")
@click.option("--state", type=click.Choice(["active", "paused", "completed"]))
@click.option("-l", "--label", "label", multiple=True, help="key=value; repeat to require several.")
@click.option("--limit", type=int, default=None, help="At most this many (default: all).")
@output_option()
@connection_options
def list_command(
    task: str | None,
    state: str | None,
    label: tuple[str, ...],
    limit: int | None,
    output: str,
    url: str,
    api_key: str | None,
) -> None:
    """List schedules."""
    labels = label_pairs(label)
    with api_client(url, api_key) as client:
        items: list[Schedule] = []
        for schedule in client.iter_schedules(task=task, state=state, labels=labels):
            if limit is not None and len(items) >= limit:
                break
            items.append(schedule)
    if output != "table":
        emit(items, output)
    elif not items:
        click.echo("No schedules.", err=True)
    else:
        render.schedules_table(items, now_utc())


@click.command("get")
@click.argument("schedule_id")
@output_option()
@connection_options
def get_command(schedule_id: str, output: str, url: str, api_key: str | None) -> None:
    """Show one schedule."""
    with api_client(url, api_key) as client:
        schedule = client.get(schedule_id)
    show_schedule(schedule, output)


def show_schedule(schedule: Schedule, output: str) -> None:
    """One schedule as fields, JSON or YAML."""
    if output != "table":
        emit(schedule, output)
        return
    now = now_utc()
    render.fields(
        [
            ("id", schedule.id),
            ("task", schedule.task),
            ("trigger", render.describe_trigger(schedule.trigger)),
            (
                "state",
                schedule.state + (f" ({schedule.state_reason})" if schedule.state_reason else ""),
            ),
            ("next run", when(schedule.next_run_at, now)),
            (
                "last run",
                f"{when(schedule.last_run_at, now)} {schedule.last_run_state or ''}".strip(),
            ),
            ("runs", _counts(schedule)),
            ("queue", schedule.queue),
            ("args", render.compact(schedule.args)),
            ("kwargs", render.compact(schedule.kwargs)),
            ("labels", render.labels(schedule.labels)),
            ("calendars", _calendars(schedule)),
            ("dispatch", dispatch_options(schedule)),
            (
                "success deadline",
                f"within {render.words(schedule.expect_success_within_seconds)}"
                if schedule.expect_success_within_seconds
                else "-",
            ),
            ("managed by", schedule.managed_by or "- (made by hand)"),
            ("description", schedule.description or "-"),
            ("version", str(schedule.version)),
        ]
    )


def dispatch_options(schedule: ScheduleSpec) -> str:
    """The Celery dispatch options set: ``time limit 10 minutes, soft 9 minutes; exchange
    reports, routing key reports.pdf; headers tenant=acme``, or ``-``."""
    parts = []
    hard, soft = schedule.time_limit_seconds, schedule.soft_time_limit_seconds
    if hard or soft:
        limits = [f"time limit {render.words(hard)}" if hard else "no hard time limit"]
        limits.append(f"soft {render.words(soft)}" if soft else "no soft limit")
        parts.append(", ".join(limits))
    if schedule.exchange:
        parts.append(f"exchange {schedule.exchange}, routing key {schedule.routing_key}")
    if schedule.headers:
        parts.append(f"headers {render.labels({k: str(v) for k, v in schedule.headers.items()})}")
    return "; ".join(parts) or "-"


def _calendars(schedule: Schedule) -> str:
    if not schedule.exclude_calendars:
        return "-"
    policy = "skipped" if schedule.on_excluded == "skip" else "run at the next allowed instant"
    return f"{', '.join(schedule.exclude_calendars)} (excluded fires are {policy})"


def _counts(schedule: Schedule) -> str:
    return (
        f"{schedule.run_count} ({schedule.failure_count} failed, "
        f"{schedule.missed_count} missed, {schedule.skipped_count} skipped)"
    )


@click.command("create")
@click.argument("task")
@trigger_options
@click.option("--id", "schedule_id", help="Choose the id (create only: fails if it exists).")
@click.option("--args", "args_json", metavar="JSON", help="Positional arguments, a JSON list.")
@click.option("--kwargs", "kwargs_json", metavar="JSON", help="Keyword arguments, a JSON object.")
@click.option("--queue", help="Celery queue (default celery).")
@click.option("--priority", type=click.IntRange(0, 255))
@click.option("-l", "--label", "label", multiple=True, help="key=value; repeatable.")
@click.option("--description")
@click.option("--paused", is_flag=True, help="Create it paused.")
@click.option("--idempotency-key", help="Repeating the request returns the same schedule.")
@click.option(
    "--exclude-calendar",
    "calendars",
    multiple=True,
    metavar="NAME",
    help="An exclusion calendar; repeatable.",
)
@click.option(
    "--on-excluded",
    type=click.Choice(["skip", "next_allowed"]),
    help="What an excluded fire does (default skip).",
)
@reason_option
@output_option()
@connection_options
def create_command(
    task: str,
    cron: str | None,
    timezone: str,
    every: str | None,
    at: str | None,
    in_: str | None,
    schedule_id: str | None,
    args_json: str | None,
    kwargs_json: str | None,
    queue: str | None,
    priority: int | None,
    label: tuple[str, ...],
    description: str | None,
    paused: bool,
    idempotency_key: str | None,
    calendars: tuple[str, ...],
    on_excluded: str | None,
    reason: str | None,
    output: str,
    url: str,
    api_key: str | None,
) -> None:
    """Create a schedule of TASK with one trigger: --cron, --every, --at or --in."""
    trigger = trigger_from(cron, timezone, every, at, in_)
    if trigger is None:
        raise click.UsageError("give a trigger: --cron, --every, --at or --in")
    given: dict[str, Any] = {
        "args": json_value(args_json, "--args", list),
        "kwargs": json_value(kwargs_json, "--kwargs", dict),
        "queue": queue,
        "priority": priority,
        "labels": label_pairs(label) or None,
        "description": description,
        "paused": paused or None,
        "exclude_calendars": list(calendars) or None,
        "on_excluded": on_excluded,
    }
    spec = ScheduleSpec(
        task=task,
        trigger=trigger,
        id=schedule_id,
        **{k: v for k, v in given.items() if v is not None},
    )
    with api_client(url, api_key) as client:
        schedule = client.create(spec, idempotency_key=idempotency_key, reason=reason)
    if output != "table":
        emit(schedule, output)
        return
    click.echo(
        f"created {schedule.id}: {render.describe_trigger(schedule.trigger)}; "
        f"next run {when(schedule.next_run_at, now_utc())}"
    )


@click.command("delete")
@click.argument("schedule_ids", nargs=-1, required=True)
@reason_option
@connection_options
def delete_command(
    schedule_ids: tuple[str, ...], reason: str | None, url: str, api_key: str | None
) -> None:
    """Delete schedules (and their runs; their history stays)."""
    with api_client(url, api_key) as client:
        for schedule_id in schedule_ids:
            client.delete(schedule_id, reason=reason)
            click.echo(f"deleted {schedule_id}")


@click.command("pause")
@click.argument("schedule_id")
@click.option("--reason", help="Why; kept as the schedule's state_reason and in its history.")
@output_option()
@connection_options
def pause_command(
    schedule_id: str, reason: str | None, output: str, url: str, api_key: str | None
) -> None:
    """Stop a schedule firing until resumed."""
    with api_client(url, api_key) as client:
        schedule = client.pause(schedule_id, reason=reason)
    _state_line(schedule, output)


@click.command("resume")
@click.argument("schedule_id")
@click.option("--reason", help="Why; kept as the schedule's state_reason and in its history.")
@output_option()
@connection_options
def resume_command(
    schedule_id: str, reason: str | None, output: str, url: str, api_key: str | None
) -> None:
    """Fire a paused schedule again, from now on."""
    with api_client(url, api_key) as client:
        schedule = client.resume(schedule_id, reason=reason)
    _state_line(schedule, output)


def _state_line(schedule: Schedule, output: str) -> None:
    if output != "table":
        emit(schedule, output)
        return
    reason = f" ({schedule.state_reason})" if schedule.state_reason else ""
    click.echo(
        f"{schedule.id}: {schedule.state}{reason}; next run {when(schedule.next_run_at, now_utc())}"
    )


@click.command("trigger")
@click.argument("schedule_id")
@reason_option
@output_option()
@connection_options
def trigger_command(
    schedule_id: str, reason: str | None, output: str, url: str, api_key: str | None
) -> None:
    """Fire a schedule now, out of band."""
    with api_client(url, api_key) as client:
        run = client.trigger(schedule_id, reason=reason)
    if output != "table":
        emit(run, output)
    else:
        click.echo(f"run {run.id} of {run.schedule_id}: {run.state}")


@click.command("runs")
@click.argument("schedule_id")
@click.option("--state", multiple=True, help="Only runs in this state; repeatable.")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@output_option()
@connection_options
def runs_command(
    schedule_id: str,
    state: tuple[str, ...],
    limit: int,
    output: str,
    url: str,
    api_key: str | None,
) -> None:
    """A schedule's runs, newest first."""
    with api_client(url, api_key) as client:
        page = client.runs(schedule_id, state=state, limit=limit)
    if output != "table":
        emit(page.items, output)
        return
    if not page.items:
        click.echo("No runs.", err=True)
        return
    render.table(
        None,
        ("RUN", "SCHEDULED FOR", "TRIGGER", "STATE", "ATTEMPT", "WORKER", "NOTE"),
        (
            (
                run.id,
                absolute(run.scheduled_for),
                run.trigger,
                run.state,
                str(run.attempt),
                run.worker or "-",
                _note(run),
            )
            for run in page.items
        ),
    )


def _note(run: Run) -> str:
    if run.error:
        error = run.error
        if isinstance(error, dict):
            return f"{error.get('type', 'error')}: {error.get('message', '')}"[:120]
        return str(error)[:120]
    if run.reason:
        return run.reason
    if run.started_at and run.finished_at:
        return f"took {(run.finished_at - run.started_at).total_seconds():.3f}s"
    return ""


@click.command("preview")
@click.argument("schedule_id", required=False)
@trigger_options
@click.option("--count", type=click.IntRange(1, 1000), default=5, show_default=True)
@click.option("--after", metavar="TIME", help="List fire times after this (default: now).")
@output_option()
@connection_options
def preview_command(
    schedule_id: str | None,
    cron: str | None,
    timezone: str,
    every: str | None,
    at: str | None,
    in_: str | None,
    count: int,
    after: str | None,
    output: str,
    url: str,
    api_key: str | None,
) -> None:
    """The next fire times of schedule SCHEDULE_ID, or of a trigger given by options."""
    trigger = trigger_from(cron, timezone, every, at, in_)
    if (schedule_id is None) == (trigger is None):
        raise click.UsageError("give a schedule id or a trigger (--cron, --every, --at, --in)")
    start = timestamp(after, "--after") if after else None
    with api_client(url, api_key) as client:
        if trigger is not None:
            preview = client.preview(trigger, after=start, count=count)
        else:
            assert schedule_id is not None
            preview = client.schedule_preview(schedule_id, count=count, after=start)
    if output != "table":
        emit(preview, output)
        return
    now = now_utc()
    rows = []
    for index, fire in enumerate(preview.fire_times, start=1):
        due = preview.due_times[index - 1] if index <= len(preview.due_times) else fire
        jitter = f"+{(due - fire).total_seconds():.3f}s" if due != fire else ""
        rows.append((str(index), absolute(fire), render.relative(fire, now), jitter))
    render.table(None, ("#", "FIRE TIME", "IN", "JITTER"), rows)


COMMANDS = (
    list_command,
    get_command,
    create_command,
    delete_command,
    pause_command,
    resume_command,
    trigger_command,
    runs_command,
    preview_command,
)
