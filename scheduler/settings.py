"""The one typed configuration object, read from ``SUNDIAL_*`` variables or a ``.env`` file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


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
    # Celery's broker_transport_options, as a JSON object.
    broker_transport_options: dict[str, Any] = Field(default_factory=dict)
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
    # Where `sundial dev` and the embedded broker keep their files (the broker's queue in
    # <data_dir>/broker, so queued messages survive a restart).
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
            secret, _, role = key.partition(":")
            if not secret or role not in ("", "read"):
                raise ValueError("each key is KEY or KEY:read")
        return keys

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

    def read_only_keys(self) -> set[str]:
        """API keys that may only read."""
        return {k.partition(":")[0] for k in self.api_keys if k.endswith(":read")}

    def write_keys(self) -> set[str]:
        """API keys that may read and write."""
        return {k for k in self.api_keys if ":" not in k}
