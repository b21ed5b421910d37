"""Schedule files: YAML or JSON, one file or a directory of them, in the API's own shape.

A document is a list of schedules, one schedule, ``{"schedules": [...]}``, or a page of
``GET /v1/schedules`` (``{"items": [...]}``); YAML files may hold several documents.
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
    """One schedule document and where it came from."""

    document: dict[str, Any]
    origin: str  # "path" or "path, document 2"
    position: int  # 1-based, within its document

    def describe(self) -> str:
        """``schedules/a.yaml, entry 3 (id 'nightly')`` for error messages."""
        schedule_id = self.document.get("id")
        named = f" (id {schedule_id!r})" if schedule_id is not None else ""
        return f"{self.origin}, entry {self.position}{named}"


def load(paths: tuple[Path, ...]) -> list[Entry]:
    """Every schedule in ``paths`` (files, or directories of .yaml/.yml/.json files)."""
    entries: list[Entry] = []
    for path in paths:
        files = (
            sorted(p for p in path.iterdir() if p.suffix in SUFFIXES) if path.is_dir() else [path]
        )
        for file in files:
            entries.extend(_load_file(file))
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


def _load_file(path: Path) -> list[Entry]:
    try:
        text = path.read_text(encoding="utf-8")
        is_json = path.suffix == ".json"
        documents = [json.loads(text)] if is_json else list(yaml.safe_load_all(text))
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise click.BadParameter(f"{path}: {_first_line(exc)}", param_hint="-f") from exc
    entries: list[Entry] = []
    for number, document in enumerate(documents, start=1):
        origin = str(path) if len(documents) == 1 else f"{path}, document {number}"
        for position, item in enumerate(_schedules_in(document, origin), start=1):
            if not isinstance(item, dict):
                message = f"{origin}, entry {position}: a schedule must be a mapping"
                raise click.BadParameter(message, param_hint="-f")
            entries.append(Entry(item, origin, position))
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
        return [document]
    raise click.BadParameter(f"{origin}: expected a schedule or a list of them", param_hint="-f")


def _first_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
