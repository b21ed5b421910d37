"""The one place domain exceptions become HTTP responses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from scheduler.errors import (
    Conflict,
    InvalidSchedule,
    NotFound,
    PreconditionFailed,
    SundialError,
)

_STATUS: list[tuple[type[SundialError], int]] = [
    (NotFound, 404),
    (Conflict, 409),
    (PreconditionFailed, 412),
]


def invalid_input(
    loc: Sequence[str | int], message: str, value: Any = None
) -> RequestValidationError:
    """A 422 naming the offending input, shaped like FastAPI's own validation errors."""
    return RequestValidationError(
        [{"type": "value_error", "loc": tuple(loc), "msg": message, "input": value}]
    )


def refuse_repeats(where: str, field: str, noun: str, values: Sequence[str | None]) -> None:
    """A 422 naming the second entry of ``body.<where>`` that repeats a value of ``field``
    (None is no value)."""
    seen: dict[str, int] = {}
    for index, value in enumerate(values):
        if value is None:
            continue
        if value in seen:
            raise invalid_input(
                ("body", where, index, field),
                f"duplicate {field}: {noun} {seen[value]} has it too",
                value,
            )
        seen[value] = index


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping of :mod:`scheduler.errors` exceptions to status codes."""
    app.add_exception_handler(InvalidSchedule, _invalid_schedule)
    app.add_exception_handler(SundialError, _domain_error)


def _invalid_schedule(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidSchedule)
    # "schedules.3.trigger" names entry 3 of a list: its index is a number, as in FastAPI's own.
    loc = ["body", *(int(p) if p.isdigit() else p for p in exc.field.split("."))]
    detail = [{"type": "value_error", "loc": loc, "msg": exc.message}]
    return JSONResponse({"detail": detail}, status_code=422)


def domain_status(exc: SundialError) -> int:
    """The HTTP status of a domain error."""
    return next((code for kind, code in _STATUS if isinstance(exc, kind)), 400)


def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SundialError)
    return JSONResponse({"detail": str(exc)}, status_code=domain_status(exc))
