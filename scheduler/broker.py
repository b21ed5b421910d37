"""Celery/kombu configuration shared by the publisher, the event consumer and the workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scheduler.settings import Settings

DEFAULT_QUEUE = "celery"


def embedded_broker_dir(settings: Settings) -> Path:
    """Folder of the file-system broker used when no broker server is configured."""
    return (settings.data_dir / "broker").resolve()


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings for every sundial process; workers built elsewhere may copy them."""
    conf: dict[str, Any] = {
        "broker_url": settings.broker_url,
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
    if settings.embedded_broker:
        folder = embedded_broker_dir(settings)
        for sub in ("queue", "control", "processed"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        conf["broker_url"] = "filesystem://"
        conf["broker_transport_options"] = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "control_folder": str(folder / "control"),
            "processed_folder": str(folder / "processed"),
            "store_processed": False,
            "polling_interval": 0.05,
        }
    return conf
