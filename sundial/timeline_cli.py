"""``sundial timeline ID``: the fire timeline of a schedule, one line per planned instant,
from the API at ``SUNDIAL_API_URL`` (with ``SUNDIAL_API_KEY``)."""

from __future__ import annotations

import os
import sys
from typing import Any

import httpx

DEFAULT_API_URL = "http://127.0.0.1:8000"


def format_entry(entry: dict[str, Any]) -> str:
    """One timeline entry as a line: time, status, cause, and why."""
    cause = entry["cause"] or ""
    return f"{entry['scheduled_for']}  {entry['status']:<10} {cause:<14} {entry['detail']}".rstrip()


def show_timeline(
    client: httpx.Client, schedule_id: str, since: str | None, until: str | None
) -> int:
    """Print every page of the timeline; the exit code (0 ok, 1 API error)."""
    params: dict[str, str] = {k: v for k, v in (("since", since), ("until", until)) if v}
    while True:
        response = client.get(f"/v1/schedules/{schedule_id}/timeline", params=params)
        if response.status_code != 200:
            print(f"sundial: {response.status_code}: {response.text}", file=sys.stderr)
            return 1
        page = response.json()
        for entry in page["items"]:
            print(format_entry(entry))
        if not page["next_cursor"]:
            return 0
        params["cursor"] = page["next_cursor"]


def api_client() -> httpx.Client:
    """A client of the API named by ``SUNDIAL_API_URL`` and ``SUNDIAL_API_KEY``."""
    key = os.environ.get("SUNDIAL_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    base = os.environ.get("SUNDIAL_API_URL", DEFAULT_API_URL)
    return httpx.Client(base_url=base, headers=headers, timeout=30)
