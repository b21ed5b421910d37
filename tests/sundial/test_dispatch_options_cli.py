"""``sundial get`` names a schedule's Celery dispatch options in words."""

from __future__ import annotations

from sundial.client import ScheduleSpec
from sundial.console.schedules import dispatch_options

TRIGGER = {"type": "interval", "seconds": 60}


def test_the_options_set_are_named_and_none_is_a_dash() -> None:
    full = ScheduleSpec.model_validate(
        {
            "task": "t",
            "trigger": TRIGGER,
            "time_limit_seconds": 600,
            "soft_time_limit_seconds": 540,
            "exchange": "reports",
            "routing_key": "reports.pdf",
            "headers": {"tenant": "acme", "n": 3},
        }
    )
    soft_only = ScheduleSpec.model_validate(
        {"task": "t", "trigger": TRIGGER, "soft_time_limit_seconds": 30}
    )

    assert dispatch_options(full) == (
        "time limit 10 minutes, soft 9 minutes; exchange reports, routing key reports.pdf; "
        "headers n=3,tenant=acme"
    )
    assert dispatch_options(soft_only) == "no hard time limit, soft 30 seconds"
    assert dispatch_options(ScheduleSpec.model_validate({"task": "t", "trigger": TRIGGER})) == "-"
