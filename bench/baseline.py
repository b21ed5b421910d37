"""The baseline: the pattern popular tutorials teach. APScheduler 3's
``BackgroundScheduler`` over the STOCK ``SQLAlchemyJobStore`` (pickled jobs) on
PostgreSQL, each job calling Celery ``send_task`` by name; ``misfire_grace_time=None`` so
nothing is dropped as late, every other setting APScheduler's default.

``python -m bench.baseline --database-url URL --broker-url URL`` runs it until SIGTERM.
The harness bulk-loads the jobs first (:func:`seed_one_offs`, :func:`seed_intervals`),
pickled exactly as ``SQLAlchemyJobStore.add_job`` pickles them.

The one addition is measurement: the job must say which fire it is, and APScheduler 3
does not pass the scheduled run time to the job, so the executor's ``run_job`` is wrapped
to hand it over in a thread-local. It costs a function call per fire.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors import pool
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from celery import Celery
from sqlalchemy import create_engine

from bench.seed import TASK, phase_us, schedule_id
from scheduler.stop_signals import StopSignals

READY = "baseline: ready"
_CHUNK = 10_000
_state: dict[str, Celery] = {}
_run_time = threading.local()


def fire(task: str, sid: str, queue: str) -> None:
    """The job, as tutorials write it: hand the task to Celery by name."""
    scheduled: datetime = _run_time.value
    _state["celery"].send_task(
        task,
        queue=queue,
        headers={
            "sundial_schedule_id": sid,
            "sundial_scheduled_for": scheduled.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        },
    )


def _noting_run_time(original: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
    def run_job(job: Job, alias: str, run_times: list[datetime], logger_name: str) -> list[Any]:
        events: list[Any] = []
        for run_time in run_times:
            _run_time.value = run_time
            events.extend(original(job, alias, [run_time], logger_name))
        return events

    return run_job


def _jobs(specs: Iterator[tuple[str, Any, datetime]], queue: str) -> Iterator[dict[str, Any]]:
    sched = BackgroundScheduler(timezone=UTC)
    for sid, trigger, next_run in specs:
        job = Job(
            sched,
            id=sid,
            func=f"{__name__}:fire",
            trigger=trigger,
            executor="default",
            args=(TASK, sid, queue),
            kwargs={},
            name=sid,
            misfire_grace_time=None,
            coalesce=False,
            max_instances=1,
            next_run_time=next_run,
        )
        yield {
            "id": sid,
            "next_run_time": next_run.timestamp(),
            "job_state": pickle.dumps(job.__getstate__(), pickle.HIGHEST_PROTOCOL),
        }


def _load(database_url: str, rows: Iterator[dict[str, Any]]) -> None:
    engine = create_engine(database_url)
    try:
        store = SQLAlchemyJobStore(engine=engine)
        store.jobs_t.create(engine, checkfirst=True)
        chunk: list[dict[str, Any]] = []
        with engine.begin() as conn:
            for row in rows:
                chunk.append(row)
                if len(chunk) >= _CHUNK:
                    conn.execute(store.jobs_t.insert(), chunk)
                    chunk = []
            if chunk:
                conn.execute(store.jobs_t.insert(), chunk)
    finally:
        engine.dispose()


def seed_one_offs(database_url: str, prefix: str, count: int, run_at: datetime, queue: str) -> None:
    """``count`` date jobs due at ``run_at`` (ids as :func:`bench.seed.schedule_id`)."""
    specs = (
        (schedule_id(prefix, i), DateTrigger(run_date=run_at, timezone=UTC), run_at)
        for i in range(count)
    )
    _load(database_url, _jobs(specs, queue))


def seed_intervals(
    database_url: str,
    prefix: str,
    count: int,
    first_fire: datetime,
    period_s: float,
    queue: str,
    aligned: bool = False,
) -> None:
    """``count`` interval jobs phased exactly like :func:`bench.seed.intervals`."""
    period = timedelta(seconds=period_s)

    def specs() -> Iterator[tuple[str, Any, datetime]]:
        for i in range(count):
            first = first_fire + timedelta(microseconds=phase_us(i, count, period_s, aligned))
            trigger = IntervalTrigger(seconds=period_s, start_date=first - period, timezone=UTC)
            yield schedule_id(prefix, i), trigger, first

    _load(database_url, _jobs(specs(), queue))


def main(argv: Sequence[str] | None = None) -> None:
    """Run the tutorial scheduler until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--broker-url", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    _state["celery"] = Celery("baseline", broker=args.broker_url, set_as_current=False)
    pool.run_job = _noting_run_time(pool.run_job)
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=args.database_url)},
        job_defaults={"misfire_grace_time": None},
        timezone=UTC,
    )
    stop = threading.Event()
    with StopSignals(lambda _signum: stop.set()):
        scheduler.start()
        print(READY, flush=True)
        stop.wait()
    scheduler.shutdown(wait=False)


if __name__ == "__main__":
    # Run inside the importable module, the one the pickled jobs' ``fire`` reference names.
    from bench.baseline import main as _main

    _main()
