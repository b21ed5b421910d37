"""Why the dashboard refused something, in one shape for pages and forms.

Writes go through the REST API's own route functions, so a refusal arrives as whatever
the API raises (validation errors, domain errors, HTTP errors). :func:`api_refusals`
turns each into :class:`Refused`, with the status the API would have answered and the
field errors keyed by dotted path (``trigger.expression``), ready to show by each field.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.errors import domain_status
from scheduler.errors import InvalidSchedule, SundialError

# Where FastAPI says an input came from; a form field is named without it.
_SOURCES = ("body", "query", "path", "header")
# A discriminated union puts the chosen member's tag in the location; a field has none.
_TRIGGER_TAGS = ("cron", "interval", "date", "delay")


class Refused(Exception):
    """A request the dashboard (or the API under it) would not carry out."""

    def __init__(self, status: int, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields or {}


def field_name(loc: Sequence[Any]) -> str:
    """The dotted field name of an error location: ``("body", "trigger", "cron",
    "expression")`` is ``trigger.expression``."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in _SOURCES:
        parts = parts[1:]
    if len(parts) > 1 and parts[0] == "trigger" and parts[1] in _TRIGGER_TAGS:
        parts = [parts[0], *parts[2:]]
    return ".".join(parts)


def _fields(errors: Sequence[Any]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for error in errors:
        name = field_name(error.get("loc", ()))
        message = str(error.get("msg", "invalid"))
        fields[name] = f"{fields[name]}; {message}" if name in fields else message
    return fields


def validation_refusal(errors: Sequence[Any]) -> Refused:
    """A 422 for pydantic-style ``errors``."""
    fields = _fields(errors)
    return Refused(422, "Some fields need fixing.", fields)


@contextmanager
def api_refusals() -> Iterator[None]:
    """Turn what the API's code raises into :class:`Refused` with the API's status."""
    try:
        yield
    except (RequestValidationError, ValidationError) as exc:
        raise validation_refusal(exc.errors()) from exc
    except InvalidSchedule as exc:
        raise Refused(422, "Some fields need fixing.", {exc.field: exc.message}) from exc
    except SundialError as exc:
        raise Refused(domain_status(exc), str(exc)) from exc
    except HTTPException as exc:
        raise Refused(exc.status_code, str(exc.detail)) from exc
