"""The synchronous client: one method per API endpoint, over httpx."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from sundial.client.errors import ConnectionFailed, error_for
from sundial.client.models import (
    ApplyPlan,
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

DEFAULT_URL = "http://127.0.0.1:8000"
M = TypeVar("M", bound=BaseModel)
Params = dict[str, str | int | list[str]]


class Client:
    """A client of one sundial API.

    ``base_url`` and ``api_key`` default to ``SUNDIAL_API_URL`` (else
    ``http://127.0.0.1:8000``) and ``SUNDIAL_API_KEY``. Pass ``http`` to reuse an
    ``httpx.Client`` of your own (its base URL is then used as is). Errors are
    :mod:`sundial.client.errors` exceptions carrying the API's ``detail``.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        http: httpx.Client | None = None,
    ) -> None:
        self.base_url = (base_url or os.environ.get("SUNDIAL_API_URL") or DEFAULT_URL).rstrip("/")
        key = api_key if api_key is not None else os.environ.get("SUNDIAL_API_KEY")
        self._headers = {"User-Agent": "sundial-client"}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._owns_http = http is None
        self._http = http or httpx.Client(base_url=self.base_url, timeout=timeout)

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"  # never the key

    def close(self) -> None:
        """Close the connection pool (unless ``http`` was passed in)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()

    # Schedules

    def create(self, spec: ScheduleSpec, *, idempotency_key: str | None = None) -> Schedule:
        """Create a schedule. With ``spec.id`` it is create-only (``PreconditionFailed`` if
        the id is taken); without, the server picks the id."""
        if spec.id is not None:
            headers = {"If-None-Match": "*"}
            return self._model(Schedule, "PUT", _path(spec.id), json=spec.body(), headers=headers)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._model(Schedule, "POST", "/v1/schedules", json=spec.body(), headers=headers)

    def put(self, spec: ScheduleSpec, *, if_match: int | None = None) -> Schedule:
        """Create or replace the schedule ``spec.id`` (a declarative upsert)."""
        if spec.id is None:
            raise ValueError("put needs spec.id")
        headers = _if_match(if_match)
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
        _put_optional(params, task=task, state=state, cursor=cursor)
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
        self, schedule_id: str, changes: Mapping[str, Any], *, if_match: int | None = None
    ) -> Schedule:
        """Apply a JSON merge patch: members replace, ``None`` removes, objects merge."""
        headers = {"Content-Type": "application/merge-patch+json", **_if_match(if_match)}
        body = json.dumps(to_jsonable_python(dict(changes)))
        return self._model(Schedule, "PATCH", _path(schedule_id), content=body, headers=headers)

    def delete(self, schedule_id: str, *, if_match: int | None = None) -> None:
        """Delete a schedule and its runs."""
        self._send("DELETE", _path(schedule_id), headers=_if_match(if_match))

    def pause(self, schedule_id: str, *, reason: str | None = None) -> Schedule:
        """Stop firing until resumed; ``reason`` becomes its ``state_reason``."""
        body = {"reason": reason} if reason else None
        return self._model(Schedule, "POST", f"{_path(schedule_id)}/pause", json=body)

    def resume(self, schedule_id: str, *, reason: str | None = None) -> Schedule:
        """Fire again from now on."""
        body = {"reason": reason} if reason else None
        return self._model(Schedule, "POST", f"{_path(schedule_id)}/resume", json=body)

    def trigger(self, schedule_id: str) -> Run:
        """Fire now, out of band; the run the leader will publish shortly."""
        return self._model(Run, "POST", f"{_path(schedule_id)}/trigger")

    def backfill(
        self, schedule_id: str, start: datetime, end: datetime, *, overlap: str | None = None
    ) -> int:
        """Fire every time the trigger would have fired in ``[start, end]``; how many runs."""
        body: dict[str, Any] = {"start": _rfc3339(start), "end": _rfc3339(end)}
        if overlap is not None:
            body["overlap"] = overlap
        response = self._send("POST", f"{_path(schedule_id)}/backfill", json=body)
        return int(response.json()["count"])

    def schedule_preview(
        self, schedule_id: str, *, count: int = 10, after: datetime | None = None
    ) -> Preview:
        """The schedule's next fire times, with its jitter applied in ``due_times``."""
        params: Params = {"count": count}
        if after is not None:
            params["after"] = _rfc3339(after)
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
        _put_optional(
            params,
            since=_rfc3339(since) if since else None,
            until=_rfc3339(until) if until else None,
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
                body[name] = _rfc3339(value)
        return self._model(Preview, "POST", "/v1/triggers/preview", json=body)

    def apply(
        self,
        schedules: Sequence[ScheduleSpec | Mapping[str, Any]],
        *,
        source: str,
        prune: bool = False,
        dry_run: bool = False,
        fire_times: int = 3,
    ) -> ApplyPlan:
        """Make the schedules ``source`` manages exactly ``schedules``, all or nothing."""
        entries = [
            {**s.body(), "id": s.id} if isinstance(s, ScheduleSpec) else to_jsonable_python(s)
            for s in schedules
        ]
        body = {
            "source": source,
            "schedules": entries,
            "prune": prune,
            "dry_run": dry_run,
            "fire_times": fire_times,
        }
        return self._model(ApplyPlan, "POST", "/v1/apply", json=body)

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
        **fields: Any,
    ) -> Schedule:
        """Run ``task`` once, ``seconds`` from now."""
        spec = _spec(task, Delay(seconds=seconds), args, kwargs, fields)
        return self.create(spec, idempotency_key=idempotency_key)

    def at(
        self,
        task: str,
        when: datetime,
        *,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> Schedule:
        """Run ``task`` once, at ``when`` (timezone-aware)."""
        if when.tzinfo is None:
            raise ValueError("when must be timezone-aware")
        spec = _spec(task, Date(run_at=when), args, kwargs, fields)
        return self.create(spec, idempotency_key=idempotency_key)

    def cron(
        self,
        schedule_id: str,
        task: str,
        expression: str,
        *,
        timezone: str = "UTC",
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> Schedule:
        """Create or replace the recurring schedule ``schedule_id`` (safe to repeat)."""
        spec = _spec(task, Cron(expression=expression, timezone=timezone), args, kwargs, fields)
        spec.id = schedule_id
        return self.put(spec)

    # Transport

    def _model(self, model: type[M], method: str, path: str, **request: Any) -> M:
        return model.model_validate(self._send(method, path, **request).json())

    def _send(self, method: str, path: str, **request: Any) -> httpx.Response:
        return self._checked(self._request(method, path, **request))

    def _request(
        self, method: str, path: str, *, headers: Mapping[str, str] | None = None, **request: Any
    ) -> httpx.Response:
        try:
            return self._http.request(
                method, path, headers={**self._headers, **(headers or {})}, **request
            )
        except httpx.TimeoutException as exc:
            raise ConnectionFailed(f"the sundial API at {self.base_url} timed out") from exc
        except httpx.TransportError as exc:
            message = f"cannot reach the sundial API at {self.base_url}: {exc}"
            raise ConnectionFailed(message) from exc

    @staticmethod
    def _checked(response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text or response.reason_phrase
        raise error_for(response.status_code, detail)


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


def _if_match(version: int | None) -> dict[str, str]:
    return {"If-Match": f'"{version}"'} if version is not None else {}


def _rfc3339(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError(f"{value!r} must be timezone-aware")
    return value.isoformat()


def _put_optional(params: Params, **values: str | None) -> None:
    for name, value in values.items():
        if value is not None:
            params[name] = value
