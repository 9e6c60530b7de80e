"""Calendar periods for usage and quotas: pure functions of (time, period, time zone).

Records keep epoch seconds; "this month" or "the week of 3 March" are computed here, in the
admin's time zone (``c.GridSpawner.usage_timezone``), and handed to the queries as epoch
bounds. Days start at midnight, weeks on Monday (ISO 8601), months on the 1st.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PERIODS = ("day", "week", "month")

#: how a period reads in a sentence ("this month")
PERIOD_WORDS = {"day": "today", "week": "this week", "month": "this month"}


@dataclass(frozen=True)
class Span:
    """``[start, end)`` in epoch seconds, with the label a page shows for it."""

    start: float
    end: float
    label: str

    def hours_of(self, started: float, stopped: float | None, now: float) -> float:
        """Hours of ``[started, stopped or now)`` that fall inside this span."""
        end = min(self.end, stopped if stopped is not None else now, now)
        return max(0.0, end - max(self.start, started)) / 3600.0


def zone(name: str) -> ZoneInfo:
    """The time zone called ``name`` (an IANA name such as ``Europe/Paris``); ValueError if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as 'UTC' or 'Europe/Paris')") from e


def _floor(moment: datetime, period: str) -> datetime:
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    raise ValueError(f"period must be one of {', '.join(PERIODS)} (got {period!r})")


def _next(start: datetime, period: str) -> datetime:
    if period == "day":
        naive = start.replace(tzinfo=None) + timedelta(days=1)
    elif period == "week":
        naive = start.replace(tzinfo=None) + timedelta(days=7)
    else:
        naive = (start.replace(day=28, tzinfo=None) + timedelta(days=4)).replace(day=1)
    # wall-clock arithmetic, then back into the zone: a day across a DST change is 23 or 25 h
    return naive.replace(tzinfo=start.tzinfo)


def _label(start: datetime, period: str) -> str:
    if period == "month":
        return start.strftime("%Y-%m")
    if period == "week":
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    return start.strftime("%Y-%m-%d")


def current(now: float, period: str, tz: ZoneInfo) -> Span:
    """The period that contains ``now`` (this day, week or month)."""
    start = _floor(datetime.fromtimestamp(now, tz), period)
    return Span(start.timestamp(), _next(start, period).timestamp(), _label(start, period))


def last(now: float, period: str, count: int, tz: ZoneInfo) -> list[Span]:
    """The ``count`` periods up to and including the current one, oldest first."""
    spans = [current(now, period, tz)]
    while len(spans) < count:
        before = datetime.fromtimestamp(spans[0].start, tz) - timedelta(hours=12)
        start = _floor(before, period)
        spans.insert(0, Span(start.timestamp(), spans[0].start, _label(start, period)))
    return spans


def between(start: float, end: float, period: str, tz: ZoneInfo, limit: int = 400) -> list[Span]:
    """The periods that overlap ``[start, end)``, oldest first, at most ``limit`` of them
    (the most recent ones)."""
    spans: list[Span] = []
    moment = _floor(datetime.fromtimestamp(start, tz), period)
    while moment.timestamp() < end:
        nxt = _next(moment, period)
        spans.append(Span(moment.timestamp(), nxt.timestamp(), _label(moment, period)))
        moment = nxt
    return spans[-limit:]
