"""How a schedule's task is sent: exchange, routing key, headers, time limits, retries."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from scheduler.firing.messages import reserved_header

MAX_TIME_LIMIT = 7 * 86400
MAX_HEADERS = 32
# AMQP short strings (exchange names, routing keys) hold at most 255 bytes.
AMQP_SHORTSTR_BYTES = 255
HEADER_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"


def _amqp_shortstr(value: str) -> str:
    if len(value.encode()) > AMQP_SHORTSTR_BYTES:
        raise ValueError(f"at most {AMQP_SHORTSTR_BYTES} bytes (UTF-8) in AMQP")
    return value


def _not_reserved(name: str) -> str:
    if reason := reserved_header(name):
        raise ValueError(f"{name!r} is {reason}")
    return name


AmqpName = Annotated[str, StringConstraints(min_length=1), AfterValidator(_amqp_shortstr)]
HeaderName = Annotated[
    str, StringConstraints(pattern=HEADER_NAME_PATTERN), AfterValidator(_not_reserved)
]
HeaderValue = Annotated[str, StringConstraints(max_length=1024)] | int | float | bool
"""A message header's value: a JSON scalar that AMQP tables and kombu's JSON both carry."""


class RetryPolicy(BaseModel):
    """Dispatch a failed run again, up to ``max_attempts`` in all, with exponential backoff."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [{"max_attempts": 3, "backoff_seconds": 10, "backoff_max_seconds": 600}]
        },
    )

    max_attempts: int = Field(ge=1, le=100)
    backoff_seconds: float = Field(default=10, ge=0, le=86400)
    backoff_max_seconds: float = Field(default=3600, ge=0, le=7 * 86400)
