"""The one typed configuration object, read from ``SUNDIAL_*`` variables or a ``.env`` file."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_SECRET_QUERY_KEYS = ("password", "passwd", "pwd", "secret", "token")


def without_password(url: str) -> str:
    """``url`` fit for a log line: a password in it, or in its query, becomes ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<a URL that cannot be parsed>"
    query = parse_qsl(parts.query, keep_blank_values=True)
    secret_query = any(key.lower() in _SECRET_QUERY_KEYS for key, _ in query)
    if password is None and not secret_query:
        return url  # untouched: urlunsplit would rewrite sqlite:/// as sqlite:/
    if password is not None:
        user_info, _, host = parts.netloc.rpartition("@")
        parts = parts._replace(netloc=f"{user_info.partition(':')[0]}:***@{host}")
    if secret_query:
        hidden = [(k, "***" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in query]
        parts = parts._replace(query=urlencode(hidden, safe="*"))
    return urlunsplit(parts)


_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


@dataclass(frozen=True)
class ApiKey:
    """One entry of ``SUNDIAL_API_KEYS``: ``[NAME=]KEY[:read]``; the secret stays hidden
    in any repr or log line."""

    name: str
    secret: SecretStr = field(repr=False)
    read_only: bool


def parse_api_key(entry: str) -> ApiKey:
    """Read ``KEY``, ``KEY:read``, ``NAME=KEY`` or ``NAME=KEY:read``. An unnamed key is
    called ``key-`` and the start of its SHA-256, so that history never holds the key."""
    body, read_only = (entry[: -len(":read")], True) if entry.endswith(":read") else (entry, False)
    name, sep, secret = body.partition("=")
    # A trailing '=' is base64 padding of an unnamed key, not a name separator.
    if not sep or not _KEY_NAME.fullmatch(name) or not secret or secret.startswith("="):
        name, secret = f"key-{hashlib.sha256(body.encode()).hexdigest()[:8]}", body
    return ApiKey(name, SecretStr(secret), read_only)


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Every knob of sundial; built once at the edge (CLI, tests) and passed down."""

    # Values may be secrets (URLs with passwords, API keys): a validation error names the
    # variable and the rule, never the value.
    model_config = SettingsConfigDict(
        env_prefix="SUNDIAL_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    # URLs may carry passwords: kept out of repr(settings).
    database_url: str = Field(default="sqlite:///./sundial.db", repr=False)
    redis_url: str | None = Field(default=None, repr=False)
    broker_url: str | None = Field(default=None, repr=False)
    # The Redis of the workers' execution ledger (sundial's tasks, jobs.dedupe); the leader
    # reads it to tell a lost message from a run that executed. Default: redis_url, else a
    # Redis broker's URL.
    ledger_url: str | None = Field(default=None, repr=False)
    # Celery's broker_transport_options, as a JSON object.
    broker_transport_options: dict[str, Any] = Field(default_factory=dict)
    # RabbitMQ: the x-max-priority the queues sundial declares get (Celery's
    # task_queue_max_priority); it must equal the workers', since RabbitMQ refuses to
    # declare one queue with two different arguments. None: queues without priorities.
    broker_queue_max_priority: int | None = Field(default=None, ge=1, le=255)
    result_backend: str | None = Field(default=None, repr=False)
    lease_ttl_seconds: float = Field(default=10.0, gt=0.5, le=600)
    # A replica whose wall clock is further than this from the database's neither fires
    # nor leads (scheduler/leadership/skew.py).
    max_clock_skew_seconds: float = Field(default=2.0, gt=0, le=3600)
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    allowed_tasks: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["*"])
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # How often the leader re-reads the store even without a change notice. Embedded mode
    # has no notices, so this short poll is what makes a 1-second delay job fire on time.
    poll_interval_seconds: float | None = Field(default=None, gt=0, le=60)
    claim_batch_size: int = Field(default=1000, ge=1, le=100_000)
    # Fires due within this window are claimed and recorded before their instant and only
    # published at it (0 = claim at the instant). Kept well under the lease TTL.
    # Opt-in: with fire-ahead on, a broker outage once released prepared fires ahead of
    # older pending ones of the same schedule (README, "Fire ahead of the instant").
    fire_ahead_ms: int = Field(default=0, ge=0, le=5000)
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    # Processes serving the API (`sundial api --workers` overrides).
    api_workers: int = Field(default=1, ge=1, le=64)
    # uvicorn's line per request; off by default, as gunicorn's: the per-route Prometheus
    # metrics count every request, the change history records every write, and the line
    # cost ~8 % of a create's CPU.
    api_access_log: bool = False
    # Run history: finished runs older than this, or beyond this many per schedule, are
    # pruned by the leader in batches.
    run_retention_days: float = Field(default=30, gt=0)
    run_retention_per_schedule: int = Field(default=1000, ge=1)
    # Finished one-offs (date and delay triggers) are deleted with their runs this long
    # after their fire settled, and their change history as long again; 0 keeps them.
    one_off_retention_days: float = Field(default=7, ge=0, le=36600)
    # Rows one retention pass deletes in one transaction: short locks, bounded WAL.
    retention_batch_size: int = Field(default=1000, ge=1, le=100_000)
    # A run with no news for this long is settled: from the result backend if one is
    # configured, else as failed with error type OutcomeUnknown.
    run_outcome_timeout_seconds: float = Field(default=86400, gt=0)
    # Redis broker: a run dispatched this long ago, never started, whose message the broker
    # holds neither queued nor delivered, was lost on its way to a worker (a connection cut
    # mid-fetch) and is published again under its id; 0 = off.
    redeliver_lost_after_seconds: float = Field(default=60, ge=0, le=86400)
    housekeeping_interval_seconds: float = Field(default=30, gt=0)
    # Alerts (success deadlines, final failures, automatic pauses): how often the leader
    # checks deadlines and sends, and the webhook they are sent to (HMAC-signed).
    alert_interval_seconds: float = Field(default=5, gt=0, le=3600)
    # A webhook URL often is a credential itself (Slack's): kept out of repr(settings).
    alert_webhook_url: str | None = Field(default=None, repr=False)
    alert_webhook_secret: SecretStr | None = None
    # Where `sundial dev` and the embedded broker keep their files (the broker's queue in
    # <data_dir>/broker, so queued messages survive a restart).
    data_dir: Path = Path(".sundial")
    # Each `sundial scheduler` serves Prometheus metrics here; 0 = off. All interfaces by
    # default, as a scraper runs on another machine; metrics carry no secret.
    scheduler_metrics_port: int = Field(default=9464, ge=0, le=65535)
    scheduler_metrics_addr: str = "0.0.0.0"

    @field_validator("api_keys", "allowed_tasks", "webhook_allowed_hosts", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql", "mysql", "mariadb")):
            raise ValueError(
                "must be a sqlite://, postgresql:// or mysql+pymysql:// SQLAlchemy URL"
            )
        return value

    @field_validator("api_keys")
    @classmethod
    def _key_roles(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for number, key in enumerate(keys, start=1):
            secret = parse_api_key(key.get_secret_value()).secret.get_secret_value()
            if not secret or ":" in secret:
                # Never echo the value: it is a secret, however malformed.
                raise ValueError(
                    f"each key is KEY, KEY:read, NAME=KEY or NAME=KEY:read (entry {number} is not)"
                )
        return keys

    @field_validator("alert_webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _broker_default(self) -> Settings:
        if self.broker_url is None and self.redis_url is not None:
            self.broker_url = self.redis_url
        return self

    @property
    def embedded_broker(self) -> bool:
        """True when no broker is configured: the data directory's own Valkey server is used."""
        return self.broker_url is None

    @property
    def poll_interval_s(self) -> float:
        """Store re-read period: short without Redis notices, a safety net with them."""
        if self.poll_interval_seconds is not None:
            return self.poll_interval_seconds
        return 0.25 if self.redis_url is None else 5.0

    def named_keys(self) -> list[ApiKey]:
        """Every API key with its name (the actor its changes are recorded under)."""
        return [parse_api_key(key.get_secret_value()) for key in self.api_keys]
