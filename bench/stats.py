"""Small statistics over receipts: percentiles, duplicates, drops."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bench.consumer import Receipt


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Delivery:
    """What arrived of a set of expected fires."""

    first: list[Receipt]  # first receipt of each distinct fire, arrival order
    duplicates: int  # receipts beyond the first of a fire
    same_id_repeats: int  # of those, re-publishes with the same task id (outbox relay)
    unexpected: int  # receipts of fires not in the expected set

    def lateness(self) -> list[float]:
        """Seconds late of each distinct fire's first receipt."""
        return [r.lateness for r in self.first]


def deliveries(receipts: Iterable[Receipt], expected: set[tuple[str, int]] | None) -> Delivery:
    """Group receipts by fire; with ``expected``, count only those fires."""
    seen: dict[tuple[str, int], Receipt] = {}
    duplicates = same_id = unexpected = 0
    for receipt in receipts:
        if expected is not None and receipt.key not in expected:
            unexpected += 1
            continue
        first = seen.get(receipt.key)
        if first is None:
            seen[receipt.key] = receipt
        else:
            duplicates += 1
            same_id += first.task_id == receipt.task_id
    return Delivery(list(seen.values()), duplicates, same_id, unexpected)


def rate(count: int, seconds: float) -> float | None:
    """``count`` per second, None when no time passed."""
    return count / seconds if seconds > 0 else None
