"""A typed Python client of the sundial API; imports neither FastAPI nor SQLAlchemy.

>>> from sundial.client import Client
>>> with Client() as sundial:  # SUNDIAL_API_URL, SUNDIAL_API_KEY
...     sundial.delay("reports.generate", seconds=30, kwargs={"id": 7})
"""

from sundial.client.client import DEFAULT_URL, Client
from sundial.client.errors import (
    ApiError,
    BadRequest,
    ClientError,
    Conflict,
    ConnectionFailed,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    ServerError,
    Unauthorized,
)
from sundial.client.models import (
    ApplyPlan,
    Cron,
    Date,
    Delay,
    FieldChange,
    Health,
    Interval,
    Page,
    PlanEntry,
    Preview,
    Retry,
    Run,
    Schedule,
    SchedulerStatus,
    ScheduleSpec,
    Trigger,
)

__all__ = [
    "DEFAULT_URL",
    "ApiError",
    "ApplyPlan",
    "BadRequest",
    "Client",
    "ClientError",
    "Conflict",
    "ConnectionFailed",
    "Cron",
    "Date",
    "Delay",
    "FieldChange",
    "Forbidden",
    "Health",
    "Interval",
    "InvalidInput",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "PlanEntry",
    "PreconditionFailed",
    "Preview",
    "Retry",
    "Run",
    "Schedule",
    "ScheduleSpec",
    "SchedulerStatus",
    "ServerError",
    "Trigger",
    "Unauthorized",
]
