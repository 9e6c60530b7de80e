"""Per day / week / month sums from records' (start, stop, GPUs, price): pure.

SQL sums one span cheaply, but splitting records across many calendar periods (a day that
is 23 hours long at a DST change, months of different lengths) is simpler and faster here:
each record is found its first period by bisection and only a record that crosses a
boundary visits the next one.
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
