"""Schedules as code: ``apply -f``, ``diff -f`` and ``export``."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from sundial.client import ApplyPlan, Conflict, InvalidInput
from sundial.console import plan as plans
from sundial.console.files import Entry, default_source, export_document, load
from sundial.console.options import api_client, connection_options, fail, output_option
from sundial.console.parsing import label_pairs
from sundial.console.render import emit

# `sundial diff --exit-code` ends with this when there are changes (1 and 2 are taken).
DIFF_FOUND = 3
_CONFLICT = re.compile(r"^schedules\[(\d+)\] \([^)]*\): (.*)$", re.DOTALL)

files_option = click.option(
    "-f",
    "--filename",
    "paths",
    multiple=True,
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="A YAML/JSON file or a directory of them; repeatable.",
)
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
) -> ApplyPlan:
    """Apply ``entries`` and print the plan; an entry's error names its file, position, id
    and field."""
    with api_client(url, api_key) as client:
        try:
            plan = client.apply(
                [e.document for e in entries], source=source, prune=prune, dry_run=dry_run
            )
        except InvalidInput as exc:
            errors = "; ".join(_locate(error, entries) for error in exc.errors)
            fail(f"invalid schedules: {errors}")
        except Conflict as exc:
            fail(_locate_conflict(str(exc.detail), entries))
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
@output_option()
@connection_options
def apply_command(
    paths: tuple[Path, ...],
    source: str | None,
    prune: bool,
    dry_run: bool,
    output: str,
    url: str,
    api_key: str | None,
) -> None:
    """Make the server's schedules match the files, all or nothing."""
    apply_entries(
        _entries(paths),
        source=source or default_source(paths),
        prune=prune,
        dry_run=dry_run,
        output=output,
        url=url,
        api_key=api_key,
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
    plan = apply_entries(
        _entries(paths),
        source=source or default_source(paths),
        prune=prune,
        dry_run=True,
        output=output,
        url=url,
        api_key=api_key,
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
    """Write schedules in the format `sundial apply -f` reads."""
    labels = label_pairs(label)
    with api_client(url, api_key) as client:
        documents = [
            export_document(s.model_dump(mode="json"))
            for s in client.iter_schedules(task=task, state=state, labels=labels)
            if source is None or s.managed_by == source
        ]
    emit(documents, output)


def _entries(paths: tuple[Path, ...]) -> list[Entry]:
    entries = load(paths)
    if not entries:
        raise click.UsageError(
            "no schedules in the files; to remove a source's schedules, delete them"
        )
    return entries


def _locate(error: dict[str, Any], entries: Sequence[Entry]) -> str:
    loc = list(error.get("loc", []))
    message = str(error.get("msg", ""))
    if len(loc) >= 3 and loc[:2] == ["body", "schedules"]:
        index = loc[2]
        if isinstance(index, int) and 0 <= index < len(entries):
            field = ".".join(str(p) for p in loc[3:])
            return f"{entries[index].describe()}: {field + ': ' if field else ''}{message}"
    return f"{'.'.join(str(p) for p in loc)}: {message}"


def _locate_conflict(detail: str, entries: Sequence[Entry]) -> str:
    match = _CONFLICT.match(detail)
    if match is None or int(match.group(1)) >= len(entries):
        return detail
    return f"{entries[int(match.group(1))].describe()}: {match.group(2)}"


COMMANDS = (apply_command, diff_command, export_command)
