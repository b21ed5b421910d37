"""Schedules as code: ``apply -f``, ``diff -f`` and ``export``."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from sundial.client import ApplyPlan, Calendar, Conflict, InvalidInput
from sundial.console import plan as plans
from sundial.console.files import Entry, Loaded, default_source, export_document, load
from sundial.console.options import (
    api_client,
    connection_options,
    fail,
    files_option,
    output_option,
    reason_option,
)
from sundial.console.parsing import label_pairs
from sundial.console.render import emit

# `sundial diff --exit-code` ends with this when there are changes (1 and 2 are taken).
DIFF_FOUND = 3
_CONFLICT = re.compile(r"^(schedules|calendars)\[(\d+)\] \([^)]*\): (.*)$", re.DOTALL)

source_option = click.option(
    "--source",
    help="Who manages these schedules (default: the file's or directory's name).",
)


def apply_entries(
    entries: Sequence[Entry],
    *,
    source: str,
    prune: bool,
    dry_run: bool,
    output: str,
    url: str,
    api_key: str | None,
    calendars: Sequence[Entry] = (),
    reason: str | None = None,
) -> ApplyPlan:
    """Apply ``entries`` (and ``calendars``) and print the plan; an entry's error names its
    file, position, id and field."""
    located = {"schedules": entries, "calendars": calendars}
    with api_client(url, api_key) as client:
        try:
            plan = client.apply(
                [e.document for e in entries],
                source=source,
                prune=prune,
                dry_run=dry_run,
                calendars=[e.document for e in calendars],
                reason=reason,
            )
        except InvalidInput as exc:
            errors = "; ".join(_locate(error, located) for error in exc.errors)
            fail(f"invalid {'input' if calendars else 'schedules'}: {errors}")
        except Conflict as exc:
            fail(_locate_conflict(str(exc.detail), located))
    if output != "table":
        emit(plan, output)
    else:
        plans.show(plan)
    return plan


@click.command("apply")
@files_option
@source_option
@click.option("--prune", is_flag=True, help="Delete schedules of this source not in the files.")
@click.option("--dry-run", is_flag=True, help="Check and show the plan; change nothing.")
@reason_option
@output_option()
@connection_options
def apply_command(
    paths: tuple[Path, ...],
    source: str | None,
    prune: bool,
    dry_run: bool,
    reason: str | None,
    output: str,
    url: str,
    api_key: str | None,
) -> None:
    """Make the server's schedules (and the calendars the files define) match the files,
    all or nothing."""
    loaded = _entries(paths, prune)
    apply_entries(
        loaded.schedules,
        source=source or default_source(paths),
        prune=prune,
        dry_run=dry_run,
        output=output,
        url=url,
        api_key=api_key,
        calendars=loaded.calendars,
        reason=reason,
    )


@click.command("diff")
@files_option
@source_option
@click.option("--prune", is_flag=True, help="Show what --prune would delete.")
@click.option(
    "--exit-code", is_flag=True, help=f"Exit {DIFF_FOUND} when applying would change something."
)
@output_option()
@connection_options
def diff_command(
    paths: tuple[Path, ...],
    source: str | None,
    prune: bool,
    exit_code: bool,
    output: str,
    url: str,
    api_key: str | None,
) -> None:
    """Show what `sundial apply` would change, and any drift; change nothing."""
    loaded = _entries(paths, prune)
    plan = apply_entries(
        loaded.schedules,
        source=source or default_source(paths),
        prune=prune,
        dry_run=True,
        output=output,
        url=url,
        api_key=api_key,
        calendars=loaded.calendars,
    )
    if exit_code and plan.changes_anything:
        sys.exit(DIFF_FOUND)


@click.command("export")
@click.option("--source", help="Only schedules managed by this apply source.")
@click.option("--task", help="Only schedules of this task.")
@click.option("--state", type=click.Choice(["active", "paused", "completed"]))
@click.option("-l", "--label", "label", multiple=True, help="key=value; repeatable.")
@output_option("yaml", "json", default="yaml")
@connection_options
def export_command(
    source: str | None,
    task: str | None,
    state: str | None,
    label: tuple[str, ...],
    output: str,
    url: str,
    api_key: str | None,
) -> None:
    """Write schedules in the format `sundial apply -f` reads; with the calendars they
    name, as `{calendars: [...], schedules: [...]}`."""
    labels = label_pairs(label)
    with api_client(url, api_key) as client:
        documents = [
            export_document(s.model_dump(mode="json"))
            for s in client.iter_schedules(task=task, state=state, labels=labels)
            if source is None or s.managed_by == source
        ]
        names = sorted({n for d in documents for n in d.get("exclude_calendars") or []})
        calendars = [calendar_document(client.get_calendar(n)) for n in names]
    emit({"calendars": calendars, "schedules": documents} if calendars else documents, output)


def calendar_document(calendar: Calendar) -> dict[str, Any]:
    """A calendar as a file holds it: its name, description and rules."""
    return {"name": calendar.name, "description": calendar.description, "rules": calendar.rules}


def _entries(paths: tuple[Path, ...], prune: bool) -> Loaded:
    loaded = load(paths)
    if not loaded.schedules and (prune or not loaded.calendars):
        raise click.UsageError(
            "no schedules in the files; to remove a source's schedules, delete them"
        )
    return loaded


def _locate(error: dict[str, Any], located: Mapping[str, Sequence[Entry]]) -> str:
    loc = list(error.get("loc", []))
    message = str(error.get("msg", ""))
    if len(loc) >= 3 and loc[0] == "body" and loc[1] in located:
        entries, index = located[loc[1]], loc[2]
        if isinstance(index, int) and 0 <= index < len(entries):
            field = ".".join(str(p) for p in loc[3:])
            return f"{entries[index].describe()}: {field + ': ' if field else ''}{message}"
    return f"{'.'.join(str(p) for p in loc)}: {message}"


def _locate_conflict(detail: str, located: Mapping[str, Sequence[Entry]]) -> str:
    match = _CONFLICT.match(detail)
    if match is None:
        return detail
    entries, index = located[match.group(1)], int(match.group(2))
    if index >= len(entries):
        return detail
    return f"{entries[index].describe()}: {match.group(3)}"


COMMANDS = (apply_command, diff_command, export_command)
