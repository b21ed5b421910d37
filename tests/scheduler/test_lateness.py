"""Fire lateness: the summary's arithmetic, and the sample read from the run history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from scheduler.runs.lateness import BUCKETS_S, percentile, recent_samples, summarize
from tests.factories import add_run, add_schedule

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
EVERY_10S = {"type": "interval", "seconds": 10}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_percentiles_use_the_nearest_rank() -> None:
    ordered = [float(n) for n in range(1, 101)]
    assert percentile(ordered, 0.5) == 50.0
    assert percentile(ordered, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0
    assert percentile([], 0.5) is None


def test_summary_counts_each_sample_in_the_first_bucket_that_holds_it() -> None:
    summary = summarize([0.005, 0.01, 0.02, 0.3, 7.0, 120.0])

    counts = dict(summary.buckets)
    assert counts[0.01] == 2  # bounds are inclusive, like Prometheus' le
    assert counts[0.05] == 1
    assert counts[0.5] == 1
    assert counts[10.0] == 1
    assert counts[None] == 1  # slower than the last bound
    assert sum(counts.values()) == summary.count == 6
    assert [bound for bound, _ in summary.buckets] == [*BUCKETS_S, None]
    assert (summary.p50, summary.max) == (0.02, 120.0)


def test_empty_summary_has_no_percentiles() -> None:
    summary = summarize([])
    assert (summary.count, summary.p50, summary.p99, summary.max) == (0, None, None, None)
    assert all(n == 0 for _, n in summary.buckets)


def test_samples_are_published_scheduled_fires_since_the_window_newest_first(
    engine: Engine,
) -> None:
    add_schedule(engine, "s", EVERY_10S, T0)
    add_run(engine, "s", at(10), state="succeeded", dispatched_at=at(10.25))
    add_run(engine, "s", at(20), state="failed", dispatched_at=at(22))
    add_run(engine, "s", at(30), state="dispatched", dispatched_at=at(30.5))
    add_run(engine, "s", at(40), state="pending")  # not published yet
    add_run(engine, "s", at(50), state="missed")  # never published
    add_run(engine, "s", at(60), state="succeeded", trigger="manual", dispatched_at=at(60.1))
    add_run(engine, "s", at(-600), state="succeeded", dispatched_at=at(-599))  # before window

    with engine.connect() as conn:
        samples = recent_samples(conn, since=T0)

    assert samples == [(at(30), 0.5), (at(20), 2.0), (at(10), 0.25)]


def test_samples_keep_only_the_newest_limit(engine: Engine) -> None:
    add_schedule(engine, "s", EVERY_10S, T0)
    for n in range(1, 8):
        state = "succeeded" if n % 2 else "failed"
        add_run(engine, "s", at(10 * n), state=state, dispatched_at=at(10 * n + n / 10))

    with engine.connect() as conn:
        samples = recent_samples(conn, since=T0, limit=3)

    assert [when for when, _ in samples] == [at(70), at(60), at(50)]
    assert [round(late, 3) for _, late in samples] == [0.7, 0.6, 0.5]
