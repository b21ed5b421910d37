"""``python -m bench [--scenarios S1,S2,...] [--quick] [--json out.json]``: start what each
scenario needs against this machine's PostgreSQL and Redis, measure, print one table and
write JSON (default ``bench/results/<timestamp>.json``). See bench/README.md."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.report import Report
from bench.scenarios import (
    s1_burst,
    s2_sustained,
    s3_scale,
    s4_api,
    s5_failover,
    s6_dev,
    s7_ingest,
    s8_retention,
    s9_claim,
)
from bench.scenarios.common import Bench
from bench.services import BROKERS, REPO, STORES, Services, git_revision, machine_info

SCENARIOS: dict[str, Callable[[Bench], None]] = {
    "S1": s1_burst.run,
    "S2": s2_sustained.run,
    "S3": s3_scale.run,
    "S4": s4_api.run,
    "S5": s5_failover.run,
    "S6": s6_dev.run,
    "S7": s7_ingest.run,
    "S8": s8_retention.run,
    "S9": s9_claim.run,
}


def _scenarios(value: str) -> list[str]:
    names = [v.strip().upper() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown scenario(s) {', '.join(unknown)}")
    return names


def _setting(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key.startswith("SUNDIAL_"):
        raise argparse.ArgumentTypeError("expected SUNDIAL_NAME=VALUE")
    return key, val


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--scenarios", type=_scenarios, default=list(SCENARIOS), help="e.g. S1,S2 (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, < 60 s in all")
    parser.add_argument("--json", type=Path, help="where to write the results")
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline runs")
    parser.add_argument(
        "--redis-db", type=int, default=10, help="Redis DB number of this run (default 10)"
    )
    parser.add_argument(
        "--broker",
        choices=BROKERS,
        default="redis",
        help="where messages go: the run's Redis DB (default) or RabbitMQ (S1, S2)",
    )
    parser.add_argument(
        "--set", type=_setting, action="append", default=[], metavar="SUNDIAL_X=V",
        help="extra setting for every sundial process (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--dev-baseline",
        type=Path,
        help="S6: also run `sundial dev` of this source tree (e.g. a snapshot of main)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the leader during S1 (needs py-spy)"
    )
    parser.add_argument(
        "--store",
        choices=sorted(STORES),
        default="postgresql",
        help="sundial's store (default postgresql; the baseline stays on PostgreSQL)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "httpcore", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    services = Services(redis_db=args.redis_db, broker=args.broker, store=args.store)
    services.check()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = REPO / "bench" / "results" / stamp
    json_path: Path = args.json or out_dir.with_suffix(".json")
    options = {
        "scenarios": args.scenarios,
        "quick": args.quick,
        "baseline": not args.no_baseline,
        "redis_db": args.redis_db,
        "broker": args.broker,
        "store": args.store,
        "settings": dict(args.set),
        "started_at": stamp,
    }
    report = Report(machine_info(services), options)
    bench = Bench(
        services,
        report,
        out_dir,
        quick=args.quick,
        baseline=not args.no_baseline,
        extra_env=dict(args.set),
        profile=args.profile,
        dev_baseline=args.dev_baseline.resolve() if args.dev_baseline else None,
    )
    started = time.monotonic()
    try:
        for name in args.scenarios:
            SCENARIOS[name](bench)
    finally:
        report.options["elapsed_s"] = round(time.monotonic() - started, 1)
        if git_revision() != report.machine["git"]:
            report.warnings.append(
                f"the code changed during the run ({report.machine['git']} → {git_revision()});"
                " the cases measured different versions"
            )
        report.write_json(json_path)
        print(report.table())
        print(f"\nJSON: {json_path}  logs: {out_dir / 'logs'}")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
