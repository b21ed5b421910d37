"""A Celery app with a realistic beat_schedule, as a user's project would have it."""

from __future__ import annotations

from datetime import timedelta

from celery import Celery
from celery.schedules import crontab, schedule

app = Celery("shop", broker="memory://", set_as_current=False)
app.conf.timezone = "Europe/Berlin"
app.conf.enable_utc = True
app.conf.task_routes = {"reports.*": {"queue": "reports"}}
app.conf.beat_schedule = {
    "send nightly invoices": {
        "task": "billing.send_invoices",
        "schedule": crontab(minute=0, hour=3),
        "kwargs": {"dry_run": False},
        "options": {"queue": "billing", "expires": 3600},
    },
    "weekday report": {
        "task": "reports.weekly",
        "schedule": crontab(minute=30, hour="8,17", day_of_week="mon-fri"),
    },
    "sunday cleanup": {
        "task": "ops.cleanup",
        "schedule": crontab(minute=15, hour=4, day_of_week=0),
        "options": {"priority": 3},
    },
    "weekend wrap-up": {
        # Celery wraps fri-sun around the week: Friday, Saturday and Sunday.
        "task": "ops.wrap_up",
        "schedule": crontab(minute=0, hour=22, day_of_week="fri-sun"),
    },
    "quarterly close": {
        "task": "billing.close_quarter",
        "schedule": crontab(minute=0, hour=6, day_of_month=1, month_of_year="*/3"),
        "args": ("EUR",),
    },
    "heartbeat": {"task": "ops.heartbeat", "schedule": crontab(minute="*/10")},
    "poll feed": {
        "task": "feeds.poll",
        "schedule": 30.0,
        "args": ("https://example.org/feed",),
        "options": {"priority": 5},
    },
    "hourly sync": {"task": "sync.run", "schedule": timedelta(hours=1)},
    "retry failed": {"task": "ops.retry", "schedule": schedule(run_every=timedelta(minutes=5))},
}
