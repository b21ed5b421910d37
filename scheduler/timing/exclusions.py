"""Exclusion calendars evaluated in one time zone: which instants they cover, and where
the excluded stretch around an instant ends (the first allowed instant after it).

Rules are expanded a 30-day chunk of local dates at a time, cached per calendar version and
time zone, and merged: touching or overlapping stretches of any of a schedule's calendars
make one stretch, whose end is therefore allowed.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo

from scheduler.timing.calendar_rules import CalendarRule, Span
from scheduler.timing.wallclock import first_instant

CHUNK_DAYS = 30
# An excluded stretch is followed this far (in chunks) before it is called endless.
HORIZON_CHUNKS = 14
_MAX_CACHED = 512


@dataclass(frozen=True)
class Cover:
    """The excluded stretch holding an instant: ``[start, end)``, ``end`` None when it
    reaches past the horizon (about a year); ``calendar`` and ``label`` say what excludes
    the instant itself."""

    start: datetime
    end: datetime | None
    calendar: str
    label: str


class Calendar:
    """A named calendar's rules at one version."""

    def __init__(self, name: str, version: int, rules: Sequence[CalendarRule]) -> None:
        self.name = name
        self.version = version
        self.rules = list(rules)
        self._chunks: dict[tuple[str, int], list[Span]] = {}

    def chunk(self, tz: tzinfo, index: int) -> list[Span]:
        """What the rules exclude on the local dates of chunk ``index``."""
        key = (str(tz), index)
        found = self._chunks.get(key)
        if found is None:
            lo = date.fromordinal(max(1, index * CHUNK_DAYS))
            hi = date.fromordinal(index * CHUNK_DAYS + CHUNK_DAYS - 1)
            found = [span for rule in self.rules for span in rule.spans(lo, hi, tz)]
            if len(self._chunks) >= _MAX_CACHED:
                self._chunks.clear()
            self._chunks[key] = found
        return found

    def upcoming(self, tz: tzinfo, after: datetime, count: int) -> list[Span]:
        """The next ``count`` stretches the rules exclude that end after ``after``, in
        order, looked for about a year ahead. A rule's stretch that runs over a chunk's
        edge (a long date range) is shown whole."""
        first = after.astimezone(tz).date().toordinal() // CHUNK_DAYS
        spans: list[Span] = []
        index = first
        while index < first + HORIZON_CHUNKS:
            spans.extend(s for s in self.chunk(tz, index) if s.end > after)
            index += 1
            shown = _joined(spans)[:count]
            edge = first_instant(
                datetime.combine(date.fromordinal(index * CHUNK_DAYS), time(0)), tz
            )
            if len(shown) == count and all(s.end < edge for s in shown):
                return shown
        return _joined(spans)[:count]


def _joined(spans: list[Span]) -> list[Span]:
    """Spans in order, those of one label that touch or overlap made one."""
    out: list[Span] = []
    open_by_label: dict[str, int] = {}
    for span in sorted(set(spans), key=lambda s: (s.start, s.end)):
        at = open_by_label.get(span.label)
        if at is not None and span.start <= out[at].end:
            out[at] = Span(out[at].start, max(out[at].end, span.end), span.label)
            continue
        open_by_label[span.label] = len(out)
        out.append(span)
    return out


@dataclass(frozen=True)
class _Stretch:
    start: datetime
    end: datetime
    parts: list[tuple[Span, str]]


class Exclusions:
    """A schedule's calendars in its time zone."""

    def __init__(self, calendars: Sequence[Calendar], tz: tzinfo) -> None:
        self.calendars = list(calendars)
        self.tz = tz
        self._merged: dict[tuple[int, int], tuple[list[_Stretch], list[datetime]]] = {}

    def _edge(self, index: int) -> datetime:
        """The first instant of chunk ``index``'s first local date."""
        first_day = date.fromordinal(index * CHUNK_DAYS)
        return first_instant(datetime.combine(first_day, time(0)), self.tz)

    def _stretches(self, lo: int, hi: int) -> tuple[list[_Stretch], list[datetime]]:
        key = (lo, hi)
        found = self._merged.get(key)
        if found is not None:
            return found
        parts = sorted(
            (
                (span, calendar.name)
                for calendar in self.calendars
                for index in range(lo, hi + 1)
                for span in calendar.chunk(self.tz, index)
            ),
            key=lambda part: part[0].start,
        )
        stretches: list[_Stretch] = []
        for span, name in parts:
            if stretches and span.start <= stretches[-1].end:
                last = stretches[-1]
                last.parts.append((span, name))
                if span.end > last.end:
                    stretches[-1] = _Stretch(last.start, span.end, last.parts)
            else:
                stretches.append(_Stretch(span.start, span.end, [(span, name)]))
        found = (stretches, [s.start for s in stretches])
        if len(self._merged) >= _MAX_CACHED:
            self._merged.clear()
        self._merged[key] = found
        return found

    def cover(self, instant: datetime) -> Cover | None:
        """The excluded stretch holding ``instant``, or None when it is allowed."""
        center = instant.astimezone(self.tz).date().toordinal() // CHUNK_DAYS
        lo, hi = center - 1, center + 1
        while True:
            stretches, starts = self._stretches(lo, hi)
            at = bisect.bisect_right(starts, instant) - 1
            if at < 0 or stretches[at].end <= instant:
                return None
            found = stretches[at]
            if found.start <= self._edge(lo) and center - lo < HORIZON_CHUNKS:
                lo -= 3
                continue
            if found.end >= self._edge(hi + 1):
                if hi - center < HORIZON_CHUNKS:
                    hi += 3
                    continue
                return self._describe(found, instant, None)
            return self._describe(found, instant, found.end)

    @staticmethod
    def _describe(found: _Stretch, instant: datetime, end: datetime | None) -> Cover:
        span, name = next(
            ((s, n) for s, n in found.parts if s.start <= instant < s.end), found.parts[0]
        )
        return Cover(found.start, end, name, span.label)
