"""Schedule files: YAML or JSON, one file or a directory of them, in the API's own shape.

A document is a list of schedules, one schedule, ``{"schedules": [...]}``, or a page of
``GET /v1/schedules`` (``{"items": [...]}``); YAML files may hold several documents. A
mapping document may also hold ``calendars``: exclusion calendars, each with its ``name``
(``{"calendars": [...], "schedules": [...]}``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml

from sundial.client import ScheduleSpec

SUFFIXES = (".yaml", ".yml", ".json")
_SOURCE_CHARS = re.compile(r"[^A-Za-z0-9._:-]+")
# The fields `sundial export` writes: the id first, then what a user sets.
SPEC_FIELDS = ("id", *(name for name in ScheduleSpec.model_fields if name != "id"))


@dataclass(frozen=True)
class Entry:
    """One schedule (or calendar) document and where it came from."""

    document: dict[str, Any]
    origin: str  # "path" or "path, document 2"
    position: int  # 1-based, within its document
    kind: str = "entry"  # "calendar" for a calendar

    def describe(self) -> str:
        """``schedules/a.yaml, entry 3 (id 'nightly')`` for error messages."""
        key = "name" if self.kind == "calendar" else "id"
        value = self.document.get(key)
        named = f" ({key} {value!r})" if value is not None else ""
        return f"{self.origin}, {self.kind} {self.position}{named}"


@dataclass(frozen=True)
class Loaded:
    """What a set of files holds."""

    schedules: list[Entry]
    calendars: list[Entry]


def load(paths: tuple[Path, ...]) -> Loaded:
    """Every schedule and calendar in ``paths`` (files, or directories of .yaml/.yml/.json
    files)."""
    loaded = Loaded([], [])
    for file in _files(paths):
        found = _load_file(file)
        loaded.schedules.extend(found.schedules)
        loaded.calendars.extend(found.calendars)
    return loaded


def load_calendars(paths: tuple[Path, ...]) -> list[Entry]:
    """The calendars of calendar files: a list of calendars, one calendar, or the
    ``calendars`` of a mapping (schedules in the same files are left out)."""
    entries: list[Entry] = []
    for file in _files(paths):
        for document, origin in _documents(file):
            items = document.get("calendars") if isinstance(document, dict) else document
            if isinstance(document, dict) and items is None:
                items = [] if "schedules" in document else [document]
            if document is not None and not isinstance(items, list):
                raise click.BadParameter(
                    f"{origin}: expected a calendar or a list of them", param_hint="-f"
                )
            entries.extend(_mappings(items or [], origin, "calendar"))
    return entries


def default_source(paths: tuple[Path, ...]) -> str:
    """The source of ``-f PATH``: the file's stem or the directory's name."""
    if len(paths) != 1:
        raise click.UsageError("with several -f paths, name the source with --source")
    path = paths[0].resolve()
    name = path.stem if path.is_file() else path.name
    source = _SOURCE_CHARS.sub("-", name).strip("-._:")[:128]
    if not source:
        raise click.UsageError(f"cannot make a source name from {paths[0]}; use --source")
    return source


def export_document(schedule: dict[str, Any]) -> dict[str, Any]:
    """A schedule as a file holds it: the id and the user-set fields."""
    return {name: schedule[name] for name in SPEC_FIELDS if name in schedule}


def _files(paths: tuple[Path, ...]) -> list[Path]:
    """The files of ``paths``: files as given, and each directory's .yaml/.yml/.json."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in SUFFIXES))
        else:
            files.append(path)
    return files


def _documents(path: Path) -> list[tuple[Any, str]]:
    """Each document of a file, with its origin for messages."""
    try:
        text = path.read_text(encoding="utf-8")
        is_json = path.suffix == ".json"
        documents = [json.loads(text)] if is_json else list(yaml.safe_load_all(text))
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise click.BadParameter(f"{path}: {_first_line(exc)}", param_hint="-f") from exc
    return [
        (document, str(path) if len(documents) == 1 else f"{path}, document {number}")
        for number, document in enumerate(documents, start=1)
    ]


def _load_file(path: Path) -> Loaded:
    loaded = Loaded([], [])
    for document, origin in _documents(path):
        loaded.schedules.extend(_mappings(_schedules_in(document, origin), origin, "entry"))
        if isinstance(document, dict) and "calendars" in document:
            calendars = document["calendars"]
            if not isinstance(calendars, list):
                message = f"{origin}: calendars must be a list of calendars"
                raise click.BadParameter(message, param_hint="-f")
            loaded.calendars.extend(_mappings(calendars, origin, "calendar"))
    return loaded


def _mappings(items: list[Any], origin: str, kind: str) -> list[Entry]:
    entries = []
    for position, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            noun = "a calendar" if kind == "calendar" else "a schedule"
            message = f"{origin}, {kind} {position}: {noun} must be a mapping"
            raise click.BadParameter(message, param_hint="-f")
        entries.append(Entry(item, origin, position, kind))
    return entries


def _schedules_in(document: Any, origin: str) -> list[Any]:
    if document is None:
        return []
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        for key in ("schedules", "items"):
            if key in document and isinstance(document[key], list):
                return list(document[key])
        if "calendars" in document:
            return []
        return [document]
    raise click.BadParameter(f"{origin}: expected a schedule or a list of them", param_hint="-f")


def _first_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
