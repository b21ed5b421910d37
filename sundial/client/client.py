"""The synchronous client: one method per API endpoint, over httpx."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic_core import to_jsonable_python

from sundial.client.calendars import CalendarSpec, calendar_body
from sundial.client.models import (
    ApplyPlan,
    Created,
    Cron,
    Date,
    Delay,
    Health,
    Page,
    Preview,
    Run,
    Schedule,
    SchedulerStatus,
    ScheduleSpec,
    Trigger,
)
from sundial.client.records import RecordsClient
from sundial.client.transport import Params, put_optional, reason_header, rfc3339

# The most schedules one batch request may carry (the API refuses more).
MAX_BATCH = 1000


class Client(RecordsClient):
    """A client of one sundial API: one method per endpoint.

    ``base_url`` and ``api_key`` default to ``SUNDIAL_API_URL`` (else
    ``http://127.0.0.1:8000``) and ``SUNDIAL_API_KEY``. Pass ``http`` to reuse an
    ``httpx.Client`` of your own (its base URL is then used as is). Errors are
    :mod:`sundial.client.errors` exceptions carrying the API's ``detail``. Every write
    takes ``reason=``: why, recorded with the change in the schedule's history (sent as
    ``X-Sundial-Reason``).
    """

    # Schedules

    def create(
        self,
        spec: ScheduleSpec,
        *,
        idempotency_key: str | None = None,
        reason: str | None = None,
    ) -> Schedule:
        """Create a schedule. With ``spec.id`` it is create-only (``PreconditionFailed`` if
        the id is taken); without, the server picks the id."""
        headers = reason_header(reason)
        if spec.id is not None:
            headers["If-None-Match"] = "*"
            return self._model(Schedule, "PUT", _path(spec.id), json=spec.body(), headers=headers)
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return self._model(Schedule, "POST", "/v1/schedules", json=spec.body(), headers=headers)

    def create_many(
        self,
        specs: Iterable[ScheduleSpec],
        *,
        idempotency_keys: Iterable[str | None] | None = None,
        reason: str | None = None,
        chunk_size: int = MAX_BATCH,
    ) -> list[Created]:
        """Create many schedules with server-chosen ids through ``POST
        /v1/schedules:batch``, ``chunk_size`` (at most 1,000) a request; one result per
        spec, in order.

        Each request is all or nothing; when one fails (``InvalidInput`` naming
        ``schedules.<index>`` of that request, ``Conflict``…) the earlier ones stay
        created. With ``idempotency_keys`` (one per spec, None for none) the whole call
        can simply be repeated: what was created is replayed (``replayed``), not doubled.
        """
        if not 1 <= chunk_size <= MAX_BATCH:
            raise ValueError(f"chunk_size must be 1..{MAX_BATCH}")
        entries = []
        keys = iter(idempotency_keys) if idempotency_keys is not None else None
        for spec in specs:
            if spec.id is not None:
                raise ValueError("create_many makes server-chosen ids; use put for spec.id")
            entry = spec.body()
            key = next(keys, None) if keys is not None else None
            if key is not None:
                entry["idempotency_key"] = key
            entries.append(entry)
        created: list[Created] = []
        headers = reason_header(reason)
        for start in range(0, len(entries), chunk_size):
            chunk = entries[start : start + chunk_size]
            response = self._send(
                "POST", "/v1/schedules:batch", json={"schedules": chunk}, headers=headers
            )
            created.extend(Created.model_validate(item) for item in response.json()["items"])
        return created

    def put(
        self, spec: ScheduleSpec, *, if_match: int | None = None, reason: str | None = None
    ) -> Schedule:
        """Create or replace the schedule ``spec.id`` (a declarative upsert)."""
        if spec.id is None:
            raise ValueError("put needs spec.id")
        headers = {**_if_match(if_match), **reason_header(reason)}
        return self._model(Schedule, "PUT", _path(spec.id), json=spec.body(), headers=headers)

    def get(self, schedule_id: str) -> Schedule:
        """One schedule."""
        return self._model(Schedule, "GET", _path(schedule_id))

    def list_schedules(
        self,
        *,
        task: str | None = None,
        state: str | None = None,
        labels: Mapping[str, str] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Schedule]:
        """One page of schedules in id order, filtered by task, state and labels."""
        params: Params = {"limit": limit}
        put_optional(params, task=task, state=state, cursor=cursor)
        if labels:
            params["label"] = [f"{k}:{v}" for k, v in labels.items()]
        return self._model(Page[Schedule], "GET", "/v1/schedules", params=params)

    def iter_schedules(
        self,
        *,
        task: str | None = None,
        state: str | None = None,
        labels: Mapping[str, str] | None = None,
        page_size: int = 500,
    ) -> Iterator[Schedule]:
        """Every matching schedule, page after page."""
        cursor: str | None = None
        while True:
            page = self.list_schedules(
                task=task, state=state, labels=labels, limit=page_size, cursor=cursor
            )
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def patch(
        self,
        schedule_id: str,
        changes: Mapping[str, Any],
        *,
        if_match: int | None = None,
        reason: str | None = None,
    ) -> Schedule:
        """Apply a JSON merge patch: members replace, ``None`` removes, objects merge."""
        headers = {
            "Content-Type": "application/merge-patch+json",
            **_if_match(if_match),
            **reason_header(reason),
        }
        body = json.dumps(to_jsonable_python(dict(changes)))
        return self._model(Schedule, "PATCH", _path(schedule_id), content=body, headers=headers)

    def delete(
        self, schedule_id: str, *, if_match: int | None = None, reason: str | None = None
    ) -> None:
        """Delete a schedule and its runs (its change history stays)."""
        headers = {**_if_match(if_match), **reason_header(reason)}
        self._send("DELETE", _path(schedule_id), headers=headers)

    def pause(self, schedule_id: str, *, reason: str | None = None) -> Schedule:
        """Stop firing until resumed; ``reason`` becomes its ``state_reason`` and is
        recorded in its history."""
        body = {"reason": reason} if reason else None
        return self._model(Schedule, "POST", f"{_path(schedule_id)}/pause", json=body)

    def resume(self, schedule_id: str, *, reason: str | None = None) -> Schedule:
        """Fire again from now on."""
        body = {"reason": reason} if reason else None
        return self._model(Schedule, "POST", f"{_path(schedule_id)}/resume", json=body)

    def trigger(self, schedule_id: str, *, reason: str | None = None) -> Run:
        """Fire now, out of band; the run the leader will publish shortly."""
        headers = reason_header(reason)
        return self._model(Run, "POST", f"{_path(schedule_id)}/trigger", headers=headers)

    def backfill(
        self,
        schedule_id: str,
        start: datetime,
        end: datetime,
        *,
        overlap: str | None = None,
        reason: str | None = None,
    ) -> int:
        """Fire every time the trigger would have fired in ``[start, end]``; how many runs."""
        body: dict[str, Any] = {"start": rfc3339(start), "end": rfc3339(end)}
        if overlap is not None:
            body["overlap"] = overlap
        if reason is not None and reason.strip():
            body["reason"] = reason
        response = self._send("POST", f"{_path(schedule_id)}/backfill", json=body)
        return int(response.json()["count"])

    def schedule_preview(
        self, schedule_id: str, *, count: int = 10, after: datetime | None = None
    ) -> Preview:
        """The schedule's next fire times, with its jitter applied in ``due_times``."""
        params: Params = {"count": count}
        if after is not None:
            params["after"] = rfc3339(after)
        return self._model(Preview, "GET", f"{_path(schedule_id)}/preview", params=params)

    # Runs

    def runs(
        self,
        schedule_id: str,
        *,
        state: Sequence[str] = (),
        trigger: Sequence[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Run]:
        """One page of a schedule's runs, newest first."""
        params: Params = {"limit": limit}
        if state:
            params["state"] = list(state)
        if trigger:
            params["trigger"] = list(trigger)
        put_optional(
            params,
            since=rfc3339(since) if since else None,
            until=rfc3339(until) if until else None,
            cursor=cursor,
        )
        return self._model(Page[Run], "GET", f"{_path(schedule_id)}/runs", params=params)

    def iter_runs(self, schedule_id: str, **filters: Any) -> Iterator[Run]:
        """Every matching run of a schedule, newest first, page after page."""
        cursor: str | None = None
        while True:
            page = self.runs(schedule_id, cursor=cursor, **filters)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def run(self, run_id: str) -> Run:
        """One run."""
        return self._model(Run, "GET", f"/v1/runs/{run_id}")

    # Triggers, apply, status

    def preview(
        self,
        trigger: Trigger,
        *,
        after: datetime | None = None,
        count: int = 10,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
    ) -> Preview:
        """Validate a trigger and list its next fire times, computed as the scheduler will."""
        body: dict[str, Any] = {"trigger": trigger.model_dump(mode="json"), "count": count}
        for name, value in (("after", after), ("start_at", start_at), ("end_at", end_at)):
            if value is not None:
                body[name] = rfc3339(value)
        return self._model(Preview, "POST", "/v1/triggers/preview", json=body)

    def apply(
        self,
        schedules: Sequence[ScheduleSpec | Mapping[str, Any]],
        *,
        source: str,
        prune: bool = False,
        dry_run: bool = False,
        fire_times: int = 3,
        calendars: (
            Mapping[str, CalendarSpec | Mapping[str, Any]] | Sequence[Mapping[str, Any]]
        ) = (),
        reason: str | None = None,
    ) -> ApplyPlan:
        """Make the schedules ``source`` manages exactly ``schedules``, all or nothing.

        ``calendars`` (name → spec, or documents holding their ``name``) are created or
        replaced first, in the same transaction, so the schedules may name them."""
        entries = [
            {**s.body(), "id": s.id} if isinstance(s, ScheduleSpec) else to_jsonable_python(s)
            for s in schedules
        ]
        body: dict[str, Any] = {
            "source": source,
            "schedules": entries,
            "prune": prune,
            "dry_run": dry_run,
            "fire_times": fire_times,
        }
        if isinstance(calendars, Mapping):
            body["calendars"] = [
                {**calendar_body(spec), "name": name} for name, spec in calendars.items()
            ]
        elif calendars:
            body["calendars"] = [to_jsonable_python(dict(c)) for c in calendars]
        headers = reason_header(reason)
        return self._model(ApplyPlan, "POST", "/v1/apply", json=body, headers=headers)

    def scheduler(self) -> SchedulerStatus:
        """The leader and the replicas seen recently."""
        return self._model(SchedulerStatus, "GET", "/v1/scheduler")

    def health(self) -> Health:
        """Liveness."""
        return self._model(Health, "GET", "/healthz")

    def ready(self) -> Health:
        """Readiness, with each check; ``status`` is ``unavailable`` when not ready."""
        response = self._request("GET", "/readyz")
        if response.status_code == 503:
            return Health.model_validate(response.json())
        return Health.model_validate(self._checked(response).json())

    def metrics(self) -> str:
        """The Prometheus text exposition."""
        return self._send("GET", "/metrics").text

    # Shortcuts

    def delay(
        self,
        task: str,
        *,
        seconds: float,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        reason: str | None = None,
        **fields: Any,
    ) -> Schedule:
        """Run ``task`` once, ``seconds`` from now."""
        spec = _spec(task, Delay(seconds=seconds), args, kwargs, fields)
        return self.create(spec, idempotency_key=idempotency_key, reason=reason)

    def at(
        self,
        task: str,
        when: datetime,
        *,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        reason: str | None = None,
        **fields: Any,
    ) -> Schedule:
        """Run ``task`` once, at ``when`` (timezone-aware)."""
        if when.tzinfo is None:
            raise ValueError("when must be timezone-aware")
        spec = _spec(task, Date(run_at=when), args, kwargs, fields)
        return self.create(spec, idempotency_key=idempotency_key, reason=reason)

    def cron(
        self,
        schedule_id: str,
        task: str,
        expression: str,
        *,
        timezone: str = "UTC",
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        reason: str | None = None,
        **fields: Any,
    ) -> Schedule:
        """Create or replace the recurring schedule ``schedule_id`` (safe to repeat)."""
        spec = _spec(task, Cron(expression=expression, timezone=timezone), args, kwargs, fields)
        spec.id = schedule_id
        return self.put(spec, reason=reason)


def _spec(
    task: str,
    trigger: Trigger,
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
    fields: Mapping[str, Any],
) -> ScheduleSpec:
    given: dict[str, Any] = dict(fields)
    if args:
        given["args"] = list(args)
    if kwargs:
        given["kwargs"] = dict(kwargs)
    return ScheduleSpec(task=task, trigger=trigger, **given)


def _path(schedule_id: str) -> str:
    return f"/v1/schedules/{schedule_id}"


def _if_match(version: int | None) -> dict[str, str | bytes]:
    return {"If-Match": f'"{version}"'} if version is not None else {}
