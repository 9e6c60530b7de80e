"""Per day / week / month sums from records' (start, stop, GPUs, price): pure.

The database sums the records per period they start in (`queries.period_sums`); the few
records that run past that period (`queries.period_overflow`) are moved here: the part past
its first period taken out of that one and shared among the following periods (a day that is
23 hours long at a DST change, months of different lengths) by `bucketed`, which is also the
plain Python statement of the whole computation (the tests compare the two).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Iterable, Sequence

from .periods import Span


@dataclass
class Bucket:
    label: str
    start: float
    end: float
    hours: float = 0.0
    gpu_hours: float = 0.0
    cost: float = 0.0


def bucketed(rows: Iterable[Sequence], spans: Sequence[Span], now: float) -> list[Bucket]:
    """``rows``: (started_at, stopped_at or None, gpus, price_per_hour); ``spans``: adjacent
    periods, oldest first. Running records count up to ``now``."""
    buckets = [Bucket(s.label, s.start, s.end) for s in spans]
    if not buckets:
        return buckets
    starts = [b.start for b in buckets]
    first, last_end = buckets[0].start, buckets[-1].end
    for started, stopped, gpus, price in rows:
        end = min(stopped if stopped is not None else now, now, last_end)
        begin = max(started, first)
        if end <= begin:
            continue
        i = max(0, bisect_right(starts, begin) - 1)
        while i < len(buckets) and buckets[i].start < end:
            b = buckets[i]
            hours = (min(end, b.end) - max(begin, b.start)) / 3600.0
            if hours > 0:
                b.hours += hours
                b.gpu_hours += gpus * hours
                b.cost += price * hours
            i += 1
    return buckets


def merged_buckets(spans: Sequence[Span], now: float, sums: Iterable[Sequence], overflow: Iterable[Sequence]) -> list[Bucket]:
    """The buckets of ``spans`` from the database's answers: ``sums`` (period end, hours,
    GPU-hours, cost of the records that start in that period, whole parts inside the span)
    and ``overflow`` (period end, until, stopped_at, gpus, price of the records that run past
    the period they start in)."""
    buckets = bucketed((), spans, now)
    index = {b.end: i for i, b in enumerate(buckets)}
    for period_end, hours, gpu_hours, cost in sums:
        b = buckets[index[float(period_end)]]  # PostgreSQL answers the literal as a Decimal
        b.hours += hours or 0.0
        b.gpu_hours += gpu_hours or 0.0
        b.cost += cost or 0.0
    later = []
    for period_end, until, stopped, gpus, price in overflow:
        period_end = float(period_end)
        b = buckets[index[period_end]]
        past = (until - period_end) / 3600.0
        b.hours -= past
        b.gpu_hours -= gpus * past
        b.cost -= price * past
        later.append((period_end, stopped, gpus, price))
    for b, extra in zip(buckets, bucketed(later, spans, now)):
        b.hours += extra.hours
        b.gpu_hours += extra.gpu_hours
        b.cost += extra.cost
    return buckets
