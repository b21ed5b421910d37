"""``sundial dev | api | scheduler | worker | migrate``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import ValidationError

if TYPE_CHECKING:
    from fastapi import FastAPI

from scheduler.settings import Settings

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


def _configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> None:
    """Upgrade the configured database to the newest schema."""
    from scheduler import migrate

    migrate.upgrade(settings.database_url)
    log.info("migrate: %s is at head", settings.database_url)


def api_from_environment() -> FastAPI:
    """The API app built from the environment: uvicorn calls this in each worker process."""
    from api.app import create_app

    return create_app(load_settings())


def cmd_api(settings: Settings, args: argparse.Namespace) -> None:
    """Serve the REST API, in ``--workers`` processes."""
    import uvicorn

    workers = args.workers or settings.api_workers
    if workers > 1:
        uvicorn.run(
            "sundial.cli:api_from_environment",
            factory=True,
            host=args.host,
            port=args.port,
            workers=workers,
            log_level="info",
        )
        return
    from api.app import create_app

    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")


def cmd_scheduler(settings: Settings, _args: argparse.Namespace) -> None:
    """Run one scheduler replica until SIGTERM."""
    from scheduler.replica import build_replica

    build_replica(settings).run()


def cmd_worker(settings: Settings, args: argparse.Namespace) -> None:
    """Run a Celery worker with the built-in tasks and task events on."""
    from jobs.app import run_worker

    run_worker(settings, list(args.celery_args))


def cmd_dev(settings: Settings, args: argparse.Namespace) -> None:
    """Migrations, API, one scheduler and one worker, on embedded defaults."""
    from sundial.dev import run_dev

    run_dev(settings, port=args.port)


def cmd_timeline(_settings: Settings, args: argparse.Namespace) -> None:
    """Print a schedule's fire timeline from the API."""
    from sundial.timeline_cli import api_client, show_timeline

    with api_client() as client:
        sys.exit(show_timeline(client, args.schedule_id, args.since, args.until))


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="sundial", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="everything in one command, no servers needed")
    dev.add_argument("--port", type=int, default=8000)
    dev.set_defaults(func=cmd_dev)
    api = sub.add_parser("api", help="the REST API")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument(
        "--workers", type=int, default=None, help="API processes (default SUNDIAL_API_WORKERS, 1)"
    )
    api.set_defaults(func=cmd_api)
    sub.add_parser("scheduler", help="one scheduler replica").set_defaults(func=cmd_scheduler)
    worker = sub.add_parser(
        "worker", help="a Celery worker with the built-in tasks; other options go to Celery"
    )
    worker.set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help="alembic upgrade head").set_defaults(func=cmd_migrate)
    timeline = sub.add_parser("timeline", help="why did a schedule (not) run? (SUNDIAL_API_URL)")
    timeline.add_argument("schedule_id")
    timeline.add_argument("--since", help="RFC 3339; default a day before --until")
    timeline.add_argument("--until", help="RFC 3339; default now")
    timeline.set_defaults(func=cmd_timeline)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; ``sundial worker`` hands unknown options to Celery."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "worker":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.celery_args = extra
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``sundial`` console script."""
    args = parse_args(argv)
    _configure_logging()
    args.func(load_settings(), args)
