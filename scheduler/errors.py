"""Domain exceptions; the API maps them to HTTP status codes in one place."""

from __future__ import annotations


class SundialError(Exception):
    """Base of every error sundial raises on purpose."""


class NotFound(SundialError):
    """No schedule or run with that id."""


class Conflict(SundialError):
    """The request collides with existing state (an id in use, a reused idempotency key)."""


class PreconditionFailed(SundialError):
    """``If-Match`` named a version that is no longer current."""


class InvalidSchedule(SundialError):
    """A schedule or trigger that cannot be fired; ``field`` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class TaskNotAllowed(InvalidSchedule):
    """The task name matches none of ``SUNDIAL_ALLOWED_TASKS``."""


class LeadershipLost(SundialError):
    """This replica's fencing token is no longer current; it must stop firing."""


class ClockSkew(LeadershipLost):
    """This replica's wall clock disagrees with the database's: it must not fire or lead."""
