"""The benchmark suite, run tiny, so it cannot rot: ``python -m bench --quick`` on S1, S2,
S5, S6, S8 and S9 against the machine's PostgreSQL and Redis, and its JSON checked for sane numbers.
Speed targets are the benchmark's business, not this test's: it checks only that every
fire was published once and nothing was lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.services import port_open, service_missing

REPO = Path(__file__).resolve().parents[2]
# Not the tests' Redis DB (13) nor a full run's default (10).
SMOKE_REDIS_DB = "11"

pytestmark = [pytest.mark.slow, pytest.mark.services]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The JSON of one quick run of S1, S2, S5, S6, S8 and S9."""
    if not (port_open("127.0.0.1", 5432) and port_open("127.0.0.1", 6379)):
        service_missing("the benchmark needs PostgreSQL on :5432 and Redis on :6379")
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--scenarios", "S1,S2,S5,S6,S8,S9",
         "--redis-db", SMOKE_REDIS_DB, "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=480, check=False,
    )  # fmt: skip
    assert out.exists(), proc.stderr[-4000:]
    data: dict[str, Any] = json.loads(out.read_text())
    data["stdout"] = proc.stdout
    data["returncode"] = proc.returncode
    data["stderr_tail"] = proc.stderr[-4000:]
    return data


def test_every_case_ran_without_error(results: dict[str, Any]) -> None:
    assert results["errors"] == {}, results["stderr_tail"]
    assert results["returncode"] == 0
    assert results["machine"]["nproc"] >= 1
    assert results["machine"]["postgresql"]


def test_burst_is_published_once_each_by_both(results: dict[str, Any]) -> None:
    for system in ("sundial", "baseline"):
        burst = results["cases"][f"S1 500 {system}"]
        assert burst["published"] == burst["n"] == 500
        assert burst["duplicates"] == 0
        assert burst["drops"] == 0
        assert burst["fires_per_s"] > 0
        assert 0 <= burst["p50_s"] <= burst["p99_s"] <= burst["max_s"]


def test_sustained_window_loses_nothing(results: dict[str, Any]) -> None:
    ours = results["cases"]["S2 200 sundial"]
    assert ours["expected"] == 200 * 5
    assert ours["published"] == ours["expected"]
    assert ours["misses"] == 0
    assert ours["recorded_missed"] == 0
    assert ours["duplicates"] == 0
    assert ours["fires_per_s"] > 0
    assert results["cases"]["S2 200 baseline"]["published"] > 0


def test_wake_up_and_failover_are_measured(results: dict[str, Any]) -> None:
    woke = results["cases"]["S5 wake-up"]
    assert all(0.5 < s < 10 for s in woke["create_to_publish_s"])
    failover = results["cases"]["S5 failover"]
    assert failover["new_leader"]
    assert 0 < failover["gap_s"] < 30
    assert failover["duplicates"] == failover["same_id_republished"]


def test_dev_mode_drains_its_backlog_and_stops_cleanly(results: dict[str, Any]) -> None:
    for system in ("sundial", "baseline"):
        drain = results["cases"][f"S6 drain 300 {system}"]
        assert drain["succeeded"] == drain["n"] == 300
        assert drain["tasks_per_s"] > 0
    # Run tracking sees every outcome through the embedded broker.
    assert results["cases"]["S6 drain 300 sundial"]["events_succeeded"] == 300
    dev = results["cases"]["S6 dev 30 sundial"]
    assert dev["succeeded_end"] > 0
    assert dev["ctrl_c_exit_code"] == 0


def test_retention_prunes_every_finished_one_off_of_the_stream(results: dict[str, Any]) -> None:
    stream = results["cases"]["S8 200/s sundial"]
    assert stream["fired"] == stream["created"] == 200 * 20
    last = stream["samples"][-1]
    # One retention after the last fire settled, nothing of the stream is left.
    assert last["rows"]["schedules"] == last["rows"]["runs"] == 0
    assert max(s["rows"]["schedules"] for s in stream["samples"]) < stream["created"]


def test_claim_ceiling_is_measured_from_every_fire(results: dict[str, Any]) -> None:
    claim = results["cases"]["S9 claim 500 spread"]
    assert claim["fires"] == 500 * 2
    # The loop's CPU and PostgreSQL's (its backend on this machine) both take part in a fire.
    assert 0 < claim["loop_cpu_us"] < claim["wall_us"]
    assert 0 < claim["pg_cpu_us"] < claim["wall_us"]
    assert claim["fires_per_s"] == pytest.approx(1e6 / claim["wall_us"])


def test_table_has_a_row_per_headline_figure(results: dict[str, Any]) -> None:
    table = results["stdout"]
    for row in ("S1 burst 500", "S2 sustained 200/s", "S5 wake-up/failover", "| met? |"):
        assert row in table
    metrics = {(m["scenario"], m["metric"]) for m in results["metrics"]}
    assert ("S1 burst 500", "drops") in metrics
