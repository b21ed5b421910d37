"""The ``sundial`` command: the servers (dev, api, scheduler, worker, migrate) and the client
subcommands (list, get, create, …, timeline, history, audit, calendars, alerts, apply, diff,
export, import-beat)."""

from __future__ import annotations

import gc
import logging
import sys
from typing import TYPE_CHECKING

import click
from pydantic import ValidationError

if TYPE_CHECKING:
    from fastapi import FastAPI

from scheduler.settings import Settings, without_password
from sundial.console import calendars, declarative, importing, records, schedules

log = logging.getLogger("sundial")


def load_settings() -> Settings:
    """Settings from the environment, or exit with a message naming the bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = [
            f"  SUNDIAL_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        ]
        sys.exit("sundial: invalid configuration:\n" + "\n".join(lines))


def _settle_heap() -> None:
    """Move what the API's start-up built (modules, schemas, tables, the app) out of the
    cyclic garbage collector's sight: every collection of the oldest generation walked it
    all, a third of a batch create's CPU (README, bench S7). The leader gained nothing
    measurable from it (bench S1), so it is left as it was."""
    gc.collect()
    gc.freeze()


def _configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """sundial: scheduled and delayed jobs over REST, fired by Celery workers.

    Server commands run sundial; client commands talk to its API at SUNDIAL_API_URL
    (default http://127.0.0.1:8000) with SUNDIAL_API_KEY. Exit codes: 0 ok, 1 API error,
    2 usage error.
    """


@main.command()
def migrate() -> None:
    """Upgrade the configured database to the newest schema (alembic upgrade head)."""
    from scheduler.store import migrate as migrations

    _configure_logging()
    settings = load_settings()
    migrations.upgrade(settings.database_url)
    log.info("migrate: %s is at head", without_password(settings.database_url))


def api_from_environment() -> FastAPI:
    """The API app built from the environment: uvicorn calls this in each worker process."""
    from api.app import create_app

    app = create_app(load_settings())
    _settle_heap()
    return app


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option(
    "--workers", type=int, default=None, help="Processes (default SUNDIAL_API_WORKERS, 1)."
)
def api(host: str, port: int, workers: int | None) -> None:
    """Serve the REST API."""
    import uvicorn

    _configure_logging()
    settings = load_settings()
    workers = workers or settings.api_workers
    if workers > 1:
        uvicorn.run(
            "sundial.cli:api_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            access_log=settings.api_access_log,
        )
        return
    from api.app import create_app

    app = create_app(settings)
    _settle_heap()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=settings.api_access_log,
    )


@main.command()
def scheduler() -> None:
    """Run one scheduler replica until SIGTERM (run several for high availability)."""
    from prometheus_client import CollectorRegistry

    from scheduler.leadership.replica import build_replica
    from scheduler.metrics import SchedulerMetrics

    _configure_logging()
    build_replica(load_settings(), metrics=SchedulerMetrics(CollectorRegistry())).run()


@main.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """A Celery worker with the built-in tasks and task events on; other options go to Celery."""
    from jobs.app import run_worker

    _configure_logging()
    run_worker(load_settings(), list(celery_args))


@main.command()
@click.option("--port", type=int, default=8000, show_default=True)
def dev(port: int) -> None:
    """Migrations, the API, one scheduler and one worker, with no servers needed."""
    from sundial.dev import run_dev

    _configure_logging()
    run_dev(load_settings(), port=port)


for _command in (
    *schedules.COMMANDS,
    *records.COMMANDS,
    *calendars.COMMANDS,
    *declarative.COMMANDS,
    importing.import_beat_command,
):
    main.add_command(_command)
