"""Celery/kombu configuration shared by the publisher, the event consumer and the workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scheduler.firing.embedded_broker import EmbeddedBroker
from scheduler.settings import Settings

DEFAULT_QUEUE = "celery"
# The embedded broker's consumers skip Redis ack emulation (the copy of every delivered
# message kept until its ack): it doubles a worker's broker round trips per task. Messages a
# worker had prefetched are still put back when it stops (Ctrl-C, SIGTERM); only a worker
# killed outright loses them, which is how the file-system broker it replaced behaved.
EMBEDDED_TRANSPORT_OPTIONS = {"ack_emulation": False}


def embedded_broker(settings: Settings) -> EmbeddedBroker:
    """The Valkey server every process of this data directory uses when no broker is set."""
    return EmbeddedBroker(embedded_broker_dir(settings))


def embedded_broker_dir(settings: Settings) -> Path:
    """Folder of the embedded broker: its state, logs and append-only files."""
    return (settings.data_dir / "broker").resolve()


def broker_url(settings: Settings) -> str:
    """The configured broker, else the embedded one (started here if no process has yet)."""
    if settings.broker_url is not None:
        return settings.broker_url
    url, _started = embedded_broker(settings).ensure_running()
    return url


def transport_options(settings: Settings) -> dict[str, Any]:
    """Celery's ``broker_transport_options``: the configured ones, with the embedded
    broker's defaults beneath them when no broker is configured."""
    base = EMBEDDED_TRANSPORT_OPTIONS if settings.embedded_broker else {}
    return base | settings.broker_transport_options


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings for every sundial process; workers built elsewhere may copy them."""
    return {
        "broker_url": broker_url(settings),
        "broker_transport_options": transport_options(settings),
        "result_backend": settings.result_backend,
        "task_default_queue": DEFAULT_QUEUE,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "enable_utc": True,
        "worker_send_task_events": True,
        "task_send_sent_event": False,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
    }
