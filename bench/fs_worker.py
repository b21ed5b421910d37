"""The baseline worker of S6: ``sundial worker`` as ``sundial dev`` ran it before the
embedded Valkey broker, on kombu's file-system transport in the data directory.

``python -m bench.fs_worker DATA_DIR [CELERY WORKER OPTIONS...]``
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from jobs.app import create_celery
from scheduler.settings import Settings


def filesystem_config(data_dir: Path) -> dict[str, Any]:
    """The kombu settings of the former embedded broker (sundial ≤ issue 12)."""
    folder = (data_dir / "fs-broker").resolve()
    for sub in ("queue", "control", "processed"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return {
        "broker_url": "filesystem://",
        "broker_transport_options": {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "control_folder": str(folder / "control"),
            "processed_folder": str(folder / "processed"),
            "store_processed": False,
            "polling_interval": 0.05,
        },
    }


def main(argv: list[str]) -> None:
    data_dir = Path(argv[0])
    settings = Settings(_env_file=None, broker_url="filesystem://", data_dir=data_dir)
    app = create_celery(settings)
    app.conf.update(filesystem_config(data_dir))
    app.worker_main(["worker", "-E", "--loglevel=INFO", *argv[1:]])


if __name__ == "__main__":
    main(sys.argv[1:])
