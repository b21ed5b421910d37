"""Optional profiling of the leader during a case: py-spy attached to the running
scheduler, idle samples included, so the summary is a wall-clock breakdown of the loop
thread (the one in APScheduler's ``_main_loop``): where the fire path spends its time,
waiting on PostgreSQL or Redis included. Top functions by own and total time."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

RATE_HZ = 200
# Stacks of the thread that runs the fire cycle; the lease, notice and event threads are
# left out of the breakdown.
LOOP_FRAME = "_main_loop"
_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    """The py-spy executable next to this Python, or on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Profiler:
    """``py-spy record --pid`` into a collapsed-stack file until :meth:`stop`."""

    def __init__(self, pid: int, out: Path, rate_hz: int = RATE_HZ, idle: bool = True) -> None:
        exe = py_spy()
        if exe is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        self.out = out
        out.parent.mkdir(parents=True, exist_ok=True)
        self._log = out.with_suffix(".log").open("wb")
        self._proc = subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--rate", str(rate_hz), "--format", "raw",
             *(["--idle"] if idle else []), "--threads", "--nonblocking", "--output", str(out)],
            stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def stop(self) -> None:
        """Stop sampling; py-spy writes the file as it exits."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        self._log.close()


def _short(frame: str) -> str:
    match = _FRAME.match(frame)
    if match is None:
        return frame
    path = match.group("file")
    for marker in ("site-packages/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match.group('func')} ({path})"


def summarize(collapsed: Path, top: int = 25, frame: str | None = LOOP_FRAME) -> dict[str, Any]:
    """Top functions of the stacks through ``frame`` (default: the leader's loop thread;
    None: every sample) by own (leaf) and total (on the stack) share of those samples,
    with the seconds they stand for."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        count = int(match.group("count"))
        if frame is not None and frame not in match.group("stack"):
            continue
        frames = [_short(f) for f in match.group("stack").split(";") if f]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            total[name] += count
    if samples == 0:
        return {"samples": 0, "own": [], "total": []}

    def pct(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": name, "pct": round(100 * n / samples, 1), "s": round(n / RATE_HZ, 2)}
            for name, n in counter.most_common(top)
        ]

    return {
        "samples": samples,
        "seconds": samples / RATE_HZ,
        "own": pct(own),
        "total": pct(total),
    }
