"""What the dashboard's pages show, from a store filled as the scheduler fills it."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, insert, update

from scheduler.metrics import SchedulerMetrics
from scheduler.store.models import LEADER_ROW, leader, replicas, schedules
from tests.api.support import T0, FakeClock, TestClient, put
from tests.factories import add_run

EVERY_MINUTE = {"type": "interval", "seconds": 60}


def _rows(page: str, table_id: str) -> list[str]:
    table = page.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr[^>]*>(.*?)</tr>", table, flags=re.S)


def _state(row: str) -> str:
    match = re.search(r"st-(\w+)", row)
    assert match, row
    return match.group(1)


def _lead(
    engine: Engine,
    replica_id: str = "r9",
    hostname: str = "sched-9",
    pid: int = 99,
    *,
    term: int = 9,
    since: datetime = T0 - timedelta(minutes=5),
    metrics: dict[str, object] | None = None,
) -> None:
    """Make ``replica_id`` a replica seen a second ago that holds the lease in ``term``."""
    with engine.begin() as conn:
        conn.execute(
            update(leader)
            .where(leader.c.name == LEADER_ROW)
            .values(
                fencing_token=term,
                holder=replica_id,
                hostname=hostname,
                pid=pid,
                since=since,
                lease_expires_at=T0 + timedelta(seconds=8),
            )
        )
        conn.execute(
            insert(replicas).values(
                replica_id=replica_id,
                hostname=hostname,
                pid=pid,
                started_at=T0 - timedelta(hours=1),
                last_seen_at=T0 - timedelta(seconds=1),
                metrics=metrics,
            )
        )


def test_overview_shows_the_leader_the_replicas_and_the_last_hour(
    client: TestClient, engine: Engine
) -> None:
    _lead(engine, "c0ffee12", "sched-1", 4242, term=7, since=T0 - timedelta(minutes=30))
    put(client, "s1", trigger=EVERY_MINUTE)
    for n in range(3):
        fire = T0 - timedelta(minutes=5 + n)
        add_run(engine, "s1", fire, state="succeeded", dispatched_at=fire + timedelta(seconds=0.02))
    add_run(engine, "s1", T0 - timedelta(hours=3), state="failed", dispatched_at=T0)

    page = client.get("/ui").text

    leader_card = page.split('id="leader-card"', 1)[1].split("</div>\n    <div", 1)[0]
    assert "c0ffee12" in leader_card and "sched-1" in leader_card and "term 7" in leader_card
    assert "c0ffee12" in "".join(_rows(page, "replicas"))
    counts = {
        _state(row): re.findall(r">(\d[\d,]*)\+?</a>", row) for row in _rows(page, "run-counts")[1:]
    }
    assert counts["succeeded"] == ["3", "3"]
    assert counts["failed"] == ["0", "1"]
    assert 'href="/ui/runs?state=failed&window=day"' in page
    lateness = "".join(_rows(page, "lateness"))
    assert "20 ms" in lateness  # p50 of the last hour
    assert "3 h" in lateness  # the day's slowest fire


def test_overview_without_a_leader_says_nothing_fires(client: TestClient) -> None:
    page = client.get("/ui").text

    assert "No replica holds the lease" in page
    assert "No scheduler replica has been seen recently" in page


def test_overview_lists_the_schedules_that_need_a_look(client: TestClient, engine: Engine) -> None:
    put(client, "flaky", trigger=EVERY_MINUTE)
    put(client, "stopped", trigger=EVERY_MINUTE)
    add_run(engine, "flaky", T0 - timedelta(minutes=1), state="failed")
    with engine.begin() as conn:
        conn.execute(
            update(schedules)
            .where(schedules.c.id == "flaky")
            .values(consecutive_failures=3, last_run_state="failed")
        )
        conn.execute(
            update(schedules)
            .where(schedules.c.id == "stopped")
            .values(state="paused", state_reason="paused after 5 consecutive failed runs")
        )

    page = client.get("/ui").text

    assert "flaky" in "".join(_rows(page, "attention-failing"))
    assert "paused after 5 consecutive failed runs" in "".join(_rows(page, "attention-paused"))


def test_schedules_table_shows_trigger_words_next_run_strip_and_labels(
    client: TestClient, engine: Engine
) -> None:
    put(
        client,
        "nightly",
        trigger={"type": "cron", "expression": "30 2 * * *", "timezone": "Europe/Berlin"},
        labels={"team": "billing"},
        description="Nightly billing report",
    )
    for n, state in enumerate(["succeeded", "failed", "succeeded"]):
        add_run(engine, "nightly", T0 - timedelta(days=n + 1), state=state)

    page = client.get("/ui/schedules").text
    (row,) = _rows(page, "schedules")[1:]

    assert "At 02:30" in row and "30 2 * * *" in row and "Europe/Berlin" in row
    assert 'datetime="2026-11-22T01:30:00Z" data-zone="Europe/Berlin"' in row
    assert re.findall(r'class="dot st-(\w+)"', row) == ["succeeded", "failed", "succeeded"]
    assert row.count("dot-empty") == 7
    assert "team=billing" in row and "Nightly billing report" in row


def test_schedules_filters_search_and_pages_by_the_api_cursor(client: TestClient) -> None:
    for n in range(55):
        put(client, f"job-{n:02d}", trigger=EVERY_MINUTE, labels={"team": "a" if n % 2 else "b"})
    put(client, "zzz-billing", trigger=EVERY_MINUTE, description="The BILLING run")

    first = client.get("/ui/schedules").text
    second = client.get(f"/ui/schedules?cursor={_next_cursor(first)}").text
    labelled = client.get("/ui/schedules?label=team:a").text
    searched = client.get("/ui/schedules?q=billing").text

    assert _ids(first) == [f"job-{n:02d}" for n in range(50)]
    assert _ids(second) == [*(f"job-{n:02d}" for n in range(50, 55)), "zzz-billing"]
    assert 'rel="next"' not in second
    assert _ids(labelled) == [f"job-{n:02d}" for n in range(1, 55, 2)]
    assert _ids(searched) == ["zzz-billing"]


def _ids(page: str) -> list[str]:
    return re.findall(r'<tr data-schedule-id="([^"]+)"', page)


def _next_cursor(page: str) -> str:
    match = re.search(r'href="[^"]*cursor=([\w-]+)">Next page', page)
    assert match, "no next page link"
    return match.group(1)


def test_a_bad_filter_is_a_page_saying_so(client: TestClient) -> None:
    response = client.get("/ui/schedules?label=nocolon")

    assert response.status_code == 422
    assert "expected key:value" in response.text


def test_schedule_page_marks_dst_changes_and_jitter_in_the_next_fires(client: TestClient) -> None:
    put(
        client,
        "monthly",
        trigger={"type": "cron", "expression": "0 6 1 * *", "timezone": "Europe/Berlin"},
        jitter_seconds=30,
    )

    page = client.get("/ui/schedules/monthly").text
    rows = _rows(page, "next-fires")[1:]

    assert len(rows) == 10
    assert "Tue 01 Dec 2026 06:00:00 CET" in rows[0]
    april = next(row for row in rows if "01 Apr 2027" in row)
    assert "CEST" in april and "clocks go forward: UTC+01:00 → UTC+02:00" in april
    assert sum("clocks go" in row for row in rows) == 1
    assert all("s jitter" in row for row in rows)  # each fire's own delay


def test_schedule_page_shows_every_field_and_the_run_history(
    client: TestClient, engine: Engine
) -> None:
    put(
        client,
        "s1",
        trigger=EVERY_MINUTE,
        retry={"max_attempts": 3, "backoff_seconds": 5, "backoff_max_seconds": 60},
        pause_after_failures=4,
        overlap="skip",
        kwargs={"format": "pdf"},
    )
    add_run(
        engine,
        "s1",
        T0 - timedelta(minutes=2),
        state="succeeded",
        dispatched_at=T0 - timedelta(minutes=2) + timedelta(seconds=1.5),
        started_at=T0 - timedelta(minutes=2) + timedelta(seconds=2),
        finished_at=T0 - timedelta(minutes=2) + timedelta(seconds=5),
        worker="celery@w1",
    )
    add_run(engine, "s1", T0 - timedelta(minutes=1), state="skipped", reason="overlap: skip")

    page = client.get("/ui/schedules/s1").text
    runs = _rows(page, "runs")[1:]

    for text in ("3 attempts, backoff 5 s doubling to 1 min", "4 failures in a row", "skip"):
        assert text in page
    assert '"format": "pdf"' in html.unescape(page)
    assert "skipped" in runs[0] and "overlap: skip" in runs[0]
    assert "succeeded" in runs[1] and "celery@w1" in runs[1]
    assert "1.5 s" in runs[1] and "3 s" in runs[1]  # lateness, duration


def test_run_page_shows_the_error_and_the_retry_chain(client: TestClient, engine: Engine) -> None:
    put(client, "s1", trigger=EVERY_MINUTE, retry={"max_attempts": 2})
    fire = T0 - timedelta(minutes=1)
    first = add_run(
        engine,
        "s1",
        fire,
        state="failed",
        reason="failed; retrying as attempt 2",
        error={"type": "ValueError", "message": "bad input", "traceback": "Traceback: line 1"},
    )
    second = add_run(engine, "s1", fire, attempt=2, trigger="retry", state="started")

    page = client.get(f"/ui/runs/{first['id']}").text
    chain = _rows(page, "attempts")[1:]

    assert "ValueError" in page and "bad input" in page and "Traceback: line 1" in page
    assert [_state(row) for row in chain] == ["failed", "started"]
    assert f"/ui/runs/{second['id']}" in chain[1]
    assert "hx-trigger" not in page.split('id="run"', 1)[1].split(">", 1)[0]  # final: no refresh
    live = client.get(f"/ui/runs/{second['id']}").text
    assert 'hx-trigger="every 2s"' in live


def test_runs_page_lists_one_state_across_schedules(client: TestClient, engine: Engine) -> None:
    put(client, "a", trigger=EVERY_MINUTE)
    put(client, "b", trigger=EVERY_MINUTE)
    add_run(engine, "a", T0 - timedelta(minutes=1), state="failed")
    add_run(engine, "b", T0 - timedelta(minutes=2), state="failed")
    add_run(engine, "b", T0 - timedelta(minutes=3), state="succeeded")
    add_run(engine, "a", T0 - timedelta(days=3), state="failed")

    day = client.get("/ui/runs?state=failed&window=day").text
    everything = client.get("/ui/runs?state=failed&window=all").text

    assert re.findall(r'data-state="(\w+)"', day) == ["failed", "failed"]
    assert len(re.findall(r'data-state="failed"', everything)) == 3


def test_unknown_schedule_or_run_is_a_404_page(client: TestClient, clock: FakeClock) -> None:
    for path in ("/ui/schedules/nope", "/ui/runs/nope", "/ui/schedules/nope/edit"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "Not found" in response.text


class _Lease:
    token: int | None = 9

    def held(self) -> bool:
        return True


def test_overview_shows_the_leaders_metrics_from_its_heartbeat(
    client: TestClient, engine: Engine
) -> None:
    metrics = SchedulerMetrics(CollectorRegistry())
    metrics.watch(_Lease(), engine)
    for late in (0.02, 0.03, 0.04, 7.0):
        metrics.fires.labels("published").inc()
        metrics.lateness.observe(late)
    metrics.fires.labels("missed").inc(2)
    metrics.broker_refusals.inc()
    metrics.store_error("mark")
    _lead(engine, metrics=metrics.snapshot(T0 - timedelta(seconds=2)))

    page = client.get("/ui").text

    panel = page.split('id="scheduler-metrics"', 1)[1].split("</section>", 1)[0]
    assert "term 9" in panel
    figures = {
        name: re.search(rf'id="metric-{name}">([^<]*)<', panel).group(1)  # type: ignore[union-attr]
        for name in ("published", "missed", "skipped", "lateness", "outbox", "refusals")
    }
    assert figures == {
        "published": "4",
        "missed": "2",
        "skipped": "0",
        "lateness": html.escape("≤ 50 ms · ≤ 10 s"),
        "outbox": "0",
        "refusals": "1",
    }
    assert "mark 1" in panel
    bars = re.findall(r'<span class="bar-count">(\d+)</span>', panel)
    assert [int(n) for n in bars] == [0, 3, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
    assert "&gt; 1 min" in panel  # the last bucket: slower than the last bound


def test_overview_says_when_the_leader_has_written_no_metrics_yet(
    client: TestClient, engine: Engine
) -> None:
    _lead(engine)

    page = client.get("/ui").text

    assert "has not written its metrics yet" in page
