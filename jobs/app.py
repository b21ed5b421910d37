"""The Celery application factory and the worker entry point."""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery

from jobs.dedupe import install
from jobs.tasks import register_tasks
from scheduler.firing.broker import celery_config
from scheduler.firing.dispatch import REDIS_SCHEMES
from scheduler.runs.execution_ledger import ledger_url
from scheduler.settings import Settings

# Redis transport: a message a worker took but never acknowledged (its connection was cut,
# its worker killed) waits in the broker's ``unacked`` hash until ``visibility_timeout``,
# then a sweep of some consumer puts it back on its queue. kombu sweeps every
# ``unacked_restore_interval`` x ``unacked_restore_throttle`` seconds (10 x 10 by default),
# and not at all while the ``unacked_mutex`` of a sweep cut mid-way is held
# (``unacked_mutex_expire``, 300 s): such a run came back minutes late or, in a 180 s
# window, not at all. Sweeping every 2 s costs one small Redis round trip; a sweep that
# outlives the shorter mutex is harmless (each restore is a transaction on the message).
# Configured broker_transport_options win.
REDIS_RESTORE_OPTIONS = {
    "unacked_restore_interval": 2,
    "unacked_restore_throttle": 1,
    "unacked_mutex_expire": 30,
}


def create_celery(settings: Settings) -> Celery:
    """A Celery app on the shared sundial config, with the built-in tasks registered and,
    with a Redis broker, the execution ledger installed.

    The app is not made Celery's "current" app, so several can live in one process
    (tests, the API publishing next to an event consumer) without leaking into each other.
    """
    app = Celery("sundial", set_as_current=False)
    app.conf.update(celery_config(settings))
    if str(app.conf.broker_url).startswith(REDIS_SCHEMES):
        configured = app.conf.broker_transport_options or {}
        app.conf.broker_transport_options = REDIS_RESTORE_OPTIONS | configured
    app.conf.worker_consumer = "jobs.consumer:BatchingConsumer"
    register_tasks(app, settings)
    url = ledger_url(settings)
    if url is not None:
        # The same opt-in third-party workers use: a run delivered twice runs once.
        install(app, redis_url=url)
    return app


def run_worker(settings: Settings, argv: Sequence[str]) -> None:
    """Run a Celery worker with the built-in tasks and task events on, until it stops.

    ``argv`` holds ordinary ``celery worker`` options (``-Q``, ``-c``, ``--pool``, ...).
    """
    app = create_celery(settings)
    app.worker_main(["worker", "-E", "--loglevel=INFO", *argv])
