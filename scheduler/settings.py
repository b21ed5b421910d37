"""The one typed configuration object, read from ``SUNDIAL_*`` variables or a ``.env`` file."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated, NamedTuple

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


class ApiKey(NamedTuple):
    """One entry of ``SUNDIAL_API_KEYS``: ``[NAME=]KEY[:read]``."""

    name: str
    secret: str
    read_only: bool


def parse_api_key(entry: str) -> ApiKey:
    """Read ``KEY``, ``KEY:read``, ``NAME=KEY`` or ``NAME=KEY:read``. An unnamed key is
    called ``key-`` and the start of its SHA-256, so that history never holds the key."""
    body, read_only = (entry[: -len(":read")], True) if entry.endswith(":read") else (entry, False)
    name, sep, secret = body.partition("=")
    # A trailing '=' is base64 padding of an unnamed key, not a name separator.
    if not sep or not _KEY_NAME.fullmatch(name) or not secret or secret.startswith("="):
        name, secret = f"key-{hashlib.sha256(body.encode()).hexdigest()[:8]}", body
    return ApiKey(name, secret, read_only)


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Every knob of sundial; built once at the edge (CLI, tests) and passed down."""

    model_config = SettingsConfigDict(env_prefix="SUNDIAL_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./sundial.db"
    redis_url: str | None = None
    broker_url: str | None = None
    result_backend: str | None = None
    lease_ttl_seconds: float = Field(default=10.0, gt=0.5, le=600)
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    allowed_tasks: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["*"])
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # How often the leader re-reads the store even without a change notice. Embedded mode
    # has no notices, so this short poll is what makes a 1-second delay job fire on time.
    poll_interval_seconds: float | None = Field(default=None, gt=0, le=60)
    claim_batch_size: int = Field(default=1000, ge=1, le=100_000)
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    # Processes serving the API (`sundial api --workers` overrides).
    api_workers: int = Field(default=1, ge=1, le=64)
    # Run history: finished runs older than this, or beyond this many per schedule, are
    # pruned by the leader in batches.
    run_retention_days: float = Field(default=30, gt=0)
    run_retention_per_schedule: int = Field(default=1000, ge=1)
    # A run with no news for this long is settled: from the result backend if one is
    # configured, else as failed with error type OutcomeUnknown.
    run_outcome_timeout_seconds: float = Field(default=86400, gt=0)
    housekeeping_interval_seconds: float = Field(default=30, gt=0)
    # Alerts (success deadlines, final failures, automatic pauses): how often the leader
    # checks deadlines and sends, and the webhook they are sent to (HMAC-signed).
    alert_interval_seconds: float = Field(default=5, gt=0, le=3600)
    alert_webhook_url: str | None = None
    alert_webhook_secret: SecretStr | None = None
    # Where `sundial dev` and the embedded broker keep their files.
    data_dir: Path = Path(".sundial")

    @field_validator("api_keys", "allowed_tasks", "webhook_allowed_hosts", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:// or postgresql:// SQLAlchemy URL")
        return value

    @field_validator("api_keys")
    @classmethod
    def _key_roles(cls, keys: list[str]) -> list[str]:
        for key in keys:
            secret = parse_api_key(key).secret
            if not secret or ":" in secret:
                raise ValueError("each key is KEY, KEY:read, NAME=KEY or NAME=KEY:read")
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
        """True when no broker server is configured and the file-system broker is used."""
        return self.broker_url is None

    @property
    def poll_interval_s(self) -> float:
        """Store re-read period: short without Redis notices, a safety net with them."""
        if self.poll_interval_seconds is not None:
            return self.poll_interval_seconds
        return 0.25 if self.redis_url is None else 5.0

    def named_keys(self) -> list[ApiKey]:
        """Every API key with its name (the actor its changes are recorded under)."""
        return [parse_api_key(key) for key in self.api_keys]
