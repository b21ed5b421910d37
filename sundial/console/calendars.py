"""``sundial calendars``: list, show, apply from files, and delete exclusion calendars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from scheduler.timing.calendar_words import describe_rule
from sundial.client import Calendar, CalendarSpec, Client, InvalidInput, NotFound
from sundial.client.errors import describe
from sundial.console import render
from sundial.console.files import Entry, load_calendars
from sundial.console.options import (
    api_client,
    connection_options,
    fail,
    files_option,
    output_option,
    reason_option,
)
from sundial.console.render import absolute, emit

# Fields of a calendar as the API returns it that no one sets: a file may carry them.
_READ_ONLY = ("version", "created_at", "updated_at", "used_by")


@click.group("calendars")
def calendars_group() -> None:
    """Exclusion calendars: days and windows in which schedules naming them do not fire."""


@calendars_group.command("list")
@output_option()
@connection_options
def list_command(output: str, url: str, api_key: str | None) -> None:
    """List calendars."""
    with api_client(url, api_key) as client:
        calendars = list(client.iter_calendars())
    if output != "table":
        emit(calendars, output)
    elif not calendars:
        click.echo("No calendars.", err=True)
    else:
        render.table(
            None,
            ("NAME", "RULES", "DESCRIPTION", "VERSION", "UPDATED"),
            (
                (
                    c.name,
                    "; ".join(describe_rule(r) for r in c.rules),
                    c.description or "-",
                    str(c.version),
                    absolute(c.updated_at),
                )
                for c in calendars
            ),
        )


@calendars_group.command("get")
@click.argument("name")
@output_option()
@connection_options
def get_command(name: str, output: str, url: str, api_key: str | None) -> None:
    """Show one calendar and the schedules that name it."""
    with api_client(url, api_key) as client:
        calendar = client.get_calendar(name)
    if output != "table":
        emit(calendar, output)
        return
    render.fields(
        [
            ("name", calendar.name),
            ("description", calendar.description or "-"),
            *((f"rule {i}", describe_rule(r)) for i, r in enumerate(calendar.rules, start=1)),
            ("used by", ", ".join(calendar.used_by or []) or "-"),
            ("version", str(calendar.version)),
            ("updated", absolute(calendar.updated_at)),
        ]
    )


@calendars_group.command("apply")
@files_option
@reason_option
@output_option()
@connection_options
def apply_command(
    paths: tuple[Path, ...], reason: str | None, output: str, url: str, api_key: str | None
) -> None:
    """Create or replace the calendars in the files (each with its `name`); a calendar
    that already matches is left alone. Each is one request: the first refused stops the
    command. For all or nothing, list them under `calendars:` in a `sundial apply` file."""
    entries = load_calendars(paths)
    if not entries:
        raise click.UsageError("no calendars in the files")
    for entry in entries:
        if not isinstance(entry.document.get("name"), str):
            raise click.BadParameter(f"{entry.describe()}: needs a name", param_hint="-f")
    applied: list[tuple[str, Calendar]] = []
    with api_client(url, api_key) as client:
        for entry in entries:
            applied.append(_apply_one(client, entry, reason))
    if output != "table":
        emit([calendar for _, calendar in applied], output)
        return
    for outcome, calendar in applied:
        click.echo(f"{calendar.name}: {outcome} (version {calendar.version})")


def _apply_one(client: Client, entry: Entry, reason: str | None) -> tuple[str, Calendar]:
    name = entry.document["name"]
    body = {k: v for k, v in entry.document.items() if k != "name" and k not in _READ_ONLY}
    try:
        current: Calendar | None = client.get_calendar(name)
    except NotFound:
        current = None
    if current is not None and _normalized(body) == {
        "description": current.description,
        "rules": current.rules,
    }:
        return "unchanged", current
    try:
        calendar = client.put_calendar(name, body, reason=reason)
    except InvalidInput as exc:
        errors = [{**e, "loc": [p for p in e.get("loc", []) if p != "body"]} for e in exc.errors]
        fail(f"invalid calendar: {entry.describe()}: {describe(errors)}")
    return ("created" if current is None else "changed"), calendar


def _normalized(body: dict[str, Any]) -> dict[str, Any] | None:
    """The body as the server stores it (defaults filled in), or None if it is invalid."""
    try:
        return CalendarSpec.model_validate(body).model_dump(mode="json")
    except ValidationError:
        return None


@calendars_group.command("delete")
@click.argument("names", nargs=-1, required=True)
@reason_option
@connection_options
def delete_command(
    names: tuple[str, ...], reason: str | None, url: str, api_key: str | None
) -> None:
    """Delete calendars no schedule names."""
    with api_client(url, api_key) as client:
        for name in names:
            client.delete_calendar(name, reason=reason)
            click.echo(f"deleted calendar {name}")


COMMANDS = (calendars_group,)
