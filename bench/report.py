"""Results: one row per headline figure, with the baseline beside it, printed as a table
and written as JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Better = Literal["higher", "lower"]


@dataclass
class Metric:
    """One figure of one scenario case.

    ``ratio`` is how many times better sundial is than the baseline: sundial ÷ baseline
    for figures where higher is better, baseline ÷ sundial where lower is better.
    ``target`` is checked against sundial's value; ``target_ratio`` against ``ratio``.
    """

    scenario: str
    metric: str
    unit: str
    sundial: float | None
    baseline: float | None
    better: Better
    target: float | None = None
    target_ratio: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        a, b = self.sundial, self.baseline
        if a is None or b is None:
            return None
        if self.better == "higher":
            return a / b if b > 0 else (math.inf if a > 0 else None)
        return b / a if a > 0 else (math.inf if b > 0 else None)

    @property
    def met(self) -> bool | None:
        checks: list[bool] = []
        if self.target is not None:
            if self.sundial is None:
                return False
            ok = (
                self.sundial >= self.target
                if self.better == "higher"
                else self.sundial <= self.target
            )
            checks.append(ok)
        if self.target_ratio is not None:
            ratio = self.ratio
            checks.append(ratio is not None and ratio >= self.target_ratio)
        return all(checks) if checks else None

    def target_text(self) -> str:
        parts = []
        if self.target is not None:
            op = "≥" if self.better == "higher" else "≤"
            parts.append(f"{op} {_fmt(self.target)}")
        if self.target_ratio is not None:
            parts.append(f"≥ {self.target_ratio:g}x base")
        return ", ".join(parts)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        ratio = self.ratio
        out["ratio"] = "inf" if ratio is not None and math.isinf(ratio) else ratio
        out["met"] = self.met
        return out


@dataclass
class Report:
    """Everything one ``python -m bench`` run measured."""

    machine: dict[str, Any]
    options: dict[str, Any]
    metrics: list[Metric] = field(default_factory=list)
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def add(self, *metrics: Metric) -> None:
        self.metrics.extend(metrics)

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "machine": self.machine,
            "options": self.options,
            "metrics": [m.as_json() for m in self.metrics],
            "cases": self.cases,
            "errors": self.errors,
            "warnings": self.warnings,
        }
        path.write_text(json.dumps(body, indent=2, default=str, allow_nan=False) + "\n")

    def table(self) -> str:
        m = self.machine
        head = (
            f"sundial bench — {m.get('nproc')} x {m.get('cpu_model')}, {m.get('ram_gib')} GiB RAM,"
            f" PostgreSQL {m.get('postgresql')}, Redis {m.get('redis')}, Python {m.get('python')},"
            f" sundial's store {m.get('store', 'postgresql')},"
            f" git {m.get('git')}{' (quick)' if self.options.get('quick') else ''}"
        )
        header = ("scenario", "metric", "sundial", "baseline", "ratio", "target", "met?")
        rows = [header]
        for x in self.metrics:
            ratio = x.ratio
            rows.append(
                (
                    x.scenario,
                    f"{x.metric} ({x.unit})" if x.unit else x.metric,
                    _fmt(x.sundial),
                    _fmt(x.baseline),
                    "" if ratio is None else ("∞" if math.isinf(ratio) else f"{ratio:.1f}x"),
                    x.target_text(),
                    {True: "yes", False: "NO", None: ""}[x.met],
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = [head, ""]
        for n, row in enumerate(rows):
            cells = [
                c.rjust(w) if 2 <= i <= 4 else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ]
            lines.append("| " + " | ".join(cells) + " |")
            if n == 0:
                lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for case, error in self.errors.items():
            lines.append(f"! {case}: {error}")
        lines.extend(f"! warning: {warning}" for warning in self.warnings)
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if math.isinf(value):
        return "∞"
    if value == int(value):
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"
