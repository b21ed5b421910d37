"""A Celery app whose beat_schedule has entries with no sundial equivalent."""

from __future__ import annotations

from celery import Celery
from celery.schedules import crontab, solar

# solar() needs the ephem package, which beat would load; the importer only needs the type.
sunset = solar.__new__(solar)
sunset.event, sunset.lat, sunset.lon = "sunset", 52.52, 13.40

app = Celery("legacy", broker="memory://", set_as_current=False)
app.conf.beat_schedule = {
    "fine": {"task": "ok.task", "schedule": 60},
    "at sunset": {"task": "lights.on", "schedule": sunset},
    "first monday": {
        "task": "reports.monthly",
        "schedule": crontab(minute=0, hour=9, day_of_week=1, day_of_month="1-7"),
    },
    "routed": {"task": "ok.other", "schedule": 60, "options": {"routing_key": "x"}},
    "unknown option": {"task": "ok.linked", "schedule": 60, "options": {"link": "x"}},
    "too fast": {"task": "ok.fast", "schedule": 0.5},
}
