"""Calendar rules in a few words, for people: the dashboard and the CLI describe a rule from
its JSON form (as the API returns it) with :func:`describe_rule`. No parsing here, so a rule
type this code does not know still reads as its JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_SHOWN_DATES = 5


def describe_rule(rule: Mapping[str, Any]) -> str:
    """``public holidays DE-BY``, ``weekly sat-sun 12:00-13:00``, ``dates 2026-12-24``…"""
    kind = rule.get("type")
    if kind == "dates":
        dates = [str(d) for d in rule.get("dates", [])]
        more = len(dates) - _SHOWN_DATES
        return "dates " + ", ".join(dates[:_SHOWN_DATES]) + (f" (+{more} more)" if more > 0 else "")
    if kind == "date_range":
        return f"{rule.get('start')} to {rule.get('end')}"
    if kind == "weekly":
        days = ",".join(str(d) for d in rule.get("days", []))
        start, end = rule.get("start_time", "00:00"), rule.get("end_time", "24:00")
        window = "" if (start, end) == ("00:00", "24:00") else f" {start}-{end}"
        return f"weekly {days}{window}"
    if kind == "holidays":
        subdivision = rule.get("subdivision")
        region = f"{rule.get('country')}" + (f"-{subdivision}" if subdivision else "")
        return f"public holidays {region}"
    if kind == "ics":
        events = str(rule.get("content", "")).count("BEGIN:VEVENT")
        return f"iCalendar file ({events} event{'' if events == 1 else 's'})"
    return json.dumps(rule, sort_keys=True, separators=(",", ":"))
