"""The Python client against a real ``sundial api`` process, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from sundial.client import (
    Client,
    Conflict,
    ConnectionFailed,
    Cron,
    Delay,
    Forbidden,
    Interval,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    ScheduleSpec,
    Unauthorized,
)
from tests.services import free_port
from tests.sundial.conftest import READ_KEY, LiveApi

pytestmark = pytest.mark.slow


def test_shortcuts_create_delay_at_and_cron_schedules(
    live_api: LiveApi, name: Callable[[str], str]
) -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    with live_api.client() as client:
        delayed = client.delay(
            "sundial.echo", seconds=30, kwargs={"n": 1}, idempotency_key=name("k")
        )
        at = client.at("sundial.echo", when, args=[1, 2], labels={"kind": "at"})
        cron_id = name("nightly")
        cron = client.cron(cron_id, "reports.generate", "0 3 * * *", timezone="Europe/Berlin")
        again = client.cron(cron_id, "reports.generate", "0 3 * * *", timezone="Europe/Berlin")

    assert delayed.trigger.type == "date" and delayed.kwargs == {"n": 1}
    assert delayed.next_run_at is not None
    assert abs((delayed.next_run_at - datetime.now(UTC)).total_seconds() - 30) < 10
    assert (at.next_run_at, at.args, at.labels) == (when, [1, 2], {"kind": "at"})
    assert isinstance(cron.trigger, Cron) and cron.trigger.timezone == "Europe/Berlin"
    assert (cron.id, again.id, again.state) == (cron_id, cron_id, "active")


def test_every_schedule_endpoint_round_trips(live_api: LiveApi, name: Callable[[str], str]) -> None:
    label = {"suite": name("ep")}
    with live_api.client() as client:
        made = [
            client.create(
                ScheduleSpec(task="sundial.echo", trigger=Interval(seconds=60 + i), labels=label)
            )
            for i in range(3)
        ]
        first = made[0].id
        page = client.list_schedules(labels=label, limit=2)
        every = list(client.iter_schedules(labels=label, page_size=2))
        got = client.get(first)
        patched = client.patch(
            first, {"queue": "reports", "labels": {"extra": "1"}}, if_match=got.version
        )
        with pytest.raises(PreconditionFailed):
            client.patch(first, {"queue": "again"}, if_match=got.version)
        paused = client.pause(first, reason="maintenance window")
        resumed = client.resume(first, reason="done")
        run = client.trigger(first)
        runs = client.runs(first)
        one_run = client.run(run.id)
        preview = client.schedule_preview(first, count=3)
        trigger_preview = client.preview(
            Cron(expression="0 3 * * *", timezone="Europe/Berlin"),
            after=datetime(2027, 1, 1, tzinfo=UTC),
            count=2,
        )
        minutely = client.create(
            ScheduleSpec(task="sundial.echo", trigger=Cron(expression="* * * * *"), labels=label)
        )
        backfilled = client.backfill(
            minutely.id,
            datetime.now(UTC) - timedelta(minutes=5),
            datetime.now(UTC) - timedelta(minutes=1),
        )
        status = client.scheduler()
        health, ready, metrics = client.health(), client.ready(), client.metrics()
        client.delete(first)
        with pytest.raises(NotFound):
            client.get(first)

    assert len(page.items) == 2 and page.next_cursor is not None
    assert sorted(s.id for s in every) == sorted(s.id for s in made)
    assert patched.queue == "reports" and patched.labels == {**label, "extra": "1"}
    assert (paused.state, paused.state_reason) == ("paused", "maintenance window")
    assert (resumed.state, resumed.state_reason) == ("active", "done")
    assert (run.trigger, run.state) == ("manual", "pending")
    assert [r.id for r in runs.items] == [run.id] and one_run.id == run.id
    assert len(preview.fire_times) == 3
    assert [t.isoformat() for t in trigger_preview.fire_times] == [
        "2027-01-01T02:00:00+00:00",
        "2027-01-02T02:00:00+00:00",
    ]
    assert backfilled >= 3
    assert status.leader is None
    assert (health.status, ready.status) == ("ok", "ok")
    assert "sundial_" in metrics


def test_errors_are_typed_and_carry_the_detail(
    live_api: LiveApi, name: Callable[[str], str]
) -> None:
    spec = ScheduleSpec(task="sundial.echo", trigger=Interval(seconds=60), id=name("dup"))
    key = name("idem")
    with live_api.client() as client:
        client.create(spec)
        with pytest.raises(PreconditionFailed, match="already exists"):
            client.create(spec)
        with pytest.raises(InvalidInput) as invalid:
            client.create(ScheduleSpec(task="sundial.echo", trigger=Cron(expression="61 * * * *")))
        with pytest.raises(NotFound) as missing:
            client.get(name("missing"))
        client.delay("sundial.echo", seconds=60, idempotency_key=key)
        with pytest.raises(Conflict):
            client.delay("sundial.echo", seconds=61, idempotency_key=key)
    with live_api.client(key=None) as anonymous, pytest.raises(Unauthorized) as unauthorized:
        anonymous.list_schedules()
    with live_api.client(key=READ_KEY) as reader:
        reader.list_schedules()
        with pytest.raises(Forbidden) as forbidden:
            reader.delay("sundial.echo", seconds=5)
    with Client(f"http://127.0.0.1:{free_port()}") as nowhere, pytest.raises(ConnectionFailed):
        nowhere.health()

    assert invalid.value.status == 422
    assert invalid.value.errors[0]["loc"][:3] == ["body", "trigger", "expression"]
    assert "minute" in str(invalid.value)
    assert missing.value.status == 404 and "no schedule" in missing.value.detail
    assert unauthorized.value.detail == "missing API key"
    assert forbidden.value.status == 403


def test_apply_through_the_client_prunes_only_its_own_source(
    live_api: LiveApi, name: Callable[[str], str]
) -> None:
    source, other = name("src"), name("other")
    a, b, c = name("a"), name("b"), name("c")
    spec = {"task": "sundial.echo", "trigger": {"type": "interval", "seconds": 60}}
    with live_api.client() as client:
        client.apply([{**spec, "id": c}], source=other)
        first = client.apply(
            [ScheduleSpec(id=a, **spec), {**spec, "id": b}],
            source=source,
        )
        dry = client.apply([{**spec, "id": a}], source=source, prune=True, dry_run=True)
        still_there = client.get(b)
        pruned = client.apply([{**spec, "id": a}], source=source, prune=True)
        again = client.apply([{**spec, "id": a}], source=source, prune=True)
        survivor = client.get(c)

    assert [e.id for e in first.created] == [a, b]
    assert [e.id for e in dry.pruned] == [b] and still_there.id == b
    assert [e.id for e in pruned.pruned] == [b]
    assert not again.changes_anything and [e.id for e in again.unchanged] == [a]
    assert survivor.managed_by == other


def test_create_many_sends_chunks_and_replays_with_keys(
    live_api: LiveApi, name: Callable[[str], str]
) -> None:
    label = name("batch")
    specs = [
        ScheduleSpec(
            task="sundial.echo", trigger=Delay(seconds=600), kwargs={"n": i}, labels={"b": label}
        )
        for i in range(5)
    ]
    keys = [name(f"k{i}") for i in range(5)]
    with live_api.client() as client:
        first = client.create_many(specs, idempotency_keys=keys, chunk_size=2)
        again = client.create_many(specs, idempotency_keys=keys, chunk_size=3)
        stored = list(client.iter_schedules(labels={"b": label}))
        bad = [specs[0], ScheduleSpec(task="sundial.echo", trigger=Cron(expression="61 * * * *"))]
        with pytest.raises(InvalidInput) as invalid:
            client.create_many(bad)
        with pytest.raises(ValueError, match="put"):
            client.create_many([ScheduleSpec(task="t", trigger=Delay(seconds=1), id="x")])

    assert [c.replayed for c in first] == [False] * 5
    assert [c.replayed for c in again] == [True] * 5
    assert [c.id for c in again] == [c.id for c in first]
    assert sorted(s.kwargs["n"] for s in stored) == [0, 1, 2, 3, 4]
    assert invalid.value.errors[0]["loc"][:4] == ["body", "schedules", 1, "trigger"]
