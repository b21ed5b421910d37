"""Free-text search over schedules: bounded windows in id order, on both stores."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from scheduler.store.schedule_reads import search_schedules
from tests.factories import add_schedule

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
EVERY_MINUTE = {"type": "interval", "seconds": 60}


def test_search_matches_id_task_and_description_in_any_case(engine: Engine) -> None:
    add_schedule(engine, "billing-daily", EVERY_MINUTE, T0)
    add_schedule(engine, "x1", EVERY_MINUTE, T0, task="Billing.invoices")
    add_schedule(engine, "x2", EVERY_MINUTE, T0, description="Send the BILLING report")
    add_schedule(engine, "x3", EVERY_MINUTE, T0, description="unrelated")
    add_schedule(engine, "x4", EVERY_MINUTE, T0, description="100%_done")

    with engine.connect() as conn:
        rows, after = search_schedules(conn, "billing")
        literal, _ = search_schedules(conn, "%_")

    assert [r["id"] for r in rows] == ["billing-daily", "x1", "x2"]
    assert after is None
    assert [r["id"] for r in literal] == ["x4"]  # LIKE wildcards are matched literally


def test_search_combines_with_the_other_filters(engine: Engine) -> None:
    add_schedule(engine, "a", EVERY_MINUTE, T0, description="nightly", labels={"team": "ops"})
    add_schedule(engine, "b", EVERY_MINUTE, T0, description="nightly", labels={"team": "web"})
    add_schedule(engine, "c", EVERY_MINUTE, T0, description="nightly", state="paused")

    with engine.connect() as conn:
        by_label, _ = search_schedules(conn, "night", labels={"team": "ops"})
        by_state, _ = search_schedules(conn, "night", state="paused")

    assert [r["id"] for r in by_label] == ["a"]
    assert [r["id"] for r in by_state] == ["c"]


def test_search_examines_a_bounded_window_and_says_where_to_go_on(engine: Engine) -> None:
    for n in range(10):
        add_schedule(engine, f"s{n}", EVERY_MINUTE, T0, description="hit" if n in (1, 8) else "")

    with engine.connect() as conn:
        first, after = search_schedules(conn, "hit", scan=4)
        second, after2 = search_schedules(conn, "hit", scan=4, after_id=after)
        third, after3 = search_schedules(conn, "hit", scan=4, after_id=after2)

    assert ([r["id"] for r in first], after) == (["s1"], "s3")
    assert ([r["id"] for r in second], after2) == ([], "s7")
    assert ([r["id"] for r in third], after3) == (["s8"], None)


def test_a_full_page_of_matches_continues_after_its_last_match(engine: Engine) -> None:
    for n in range(6):
        add_schedule(engine, f"s{n}", EVERY_MINUTE, T0, description="hit")

    with engine.connect() as conn:
        page, after = search_schedules(conn, "hit", limit=2)
        rest, end = search_schedules(conn, "hit", limit=10, after_id=after)

    assert ([r["id"] for r in page], after) == (["s0", "s1"], "s1")
    assert ([r["id"] for r in rest], end) == (["s2", "s3", "s4", "s5"], None)
