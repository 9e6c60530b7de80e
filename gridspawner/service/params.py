"""The query parameters of the usage pages and REST API → what to count: pure.

Every parameter is checked, with an error naming it (the pages show them, REST answers 400):

- ``period``: ``today``, ``week``, ``month`` (default), ``last-month``, ``year``, ``all``;
  or ``from`` and/or ``to``: dates (``YYYY-MM-DD``, in the usage time zone; both inclusive);
- ``by``: user, group, backend, gpu_model, host, day, week, month (sums; default user);
- ``user``, ``group``, ``backend``, ``gpu_model``, ``kind`` (server | run): filters (empty:
  all);
- ``page`` (≥ 1), ``limit`` (1–1000), ``format`` (json | csv).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Mapping
from zoneinfo import ZoneInfo

from ..usage import periods
from ..usage.models import KINDS
from ..usage.periods import Span
from ..usage.queries import DIMENSIONS, Filters

PERIOD_CHOICES = ("today", "week", "month", "last-month", "year", "all")
FORMATS = ("json", "csv")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,255}")
#: "all" starts here (before any record gridspawner can have written)
EPOCH_START = 0.0


class ParamErrors(ValueError):
    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


@dataclass(frozen=True)
class Query:
    span: Span
    period: str  # one of PERIOD_CHOICES, or "custom"
    by: str
    filters: Filters
    page: int = 1
    limit: int = 50
    format: str = "json"
    values: Mapping[str, str] = field(default_factory=dict)  # what was asked, for the form


def _one(args: Mapping[str, list[str]], name: str) -> str | None:
    values = args.get(name) or []
    return values[-1].strip() if values else None


def _day(text: str, name: str, tz: ZoneInfo, errors: dict) -> datetime | None:
    if not _DATE.fullmatch(text):
        errors[name] = f"must be a date such as 2025-06-01 (got {text[:20]!r})"
        return None
    try:
        d = date.fromisoformat(text)
    except ValueError:
        errors[name] = f"{text!r} is not a date"
        return None
    return datetime(d.year, d.month, d.day, tzinfo=tz)


def period_span(period: str, now: float, tz: ZoneInfo) -> Span:
    if period == "today":
        return periods.current(now, "day", tz)
    if period == "week":
        return periods.current(now, "week", tz)
    if period == "month":
        return periods.current(now, "month", tz)
    if period == "last-month":
        this = periods.current(now, "month", tz)
        return periods.current(this.start - 3600, "month", tz)
    if period == "year":
        start = datetime.fromtimestamp(now, tz).replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
        return Span(start.timestamp(), start.replace(year=start.year + 1).timestamp(), f"{start.year}")
    return Span(EPOCH_START, now + 1, "all")


def parse_query(args: Mapping[str, list[str]], now: float, tz: ZoneInfo, *, default_by: str = "user",
                default_limit: int = 50) -> Query:
    """Parse ``args`` (tornado's ``request.arguments``, decoded); raises ParamErrors."""
    errors: dict[str, str] = {}
    values = {k: (_one(args, k) or "") for k in args}
    period = _one(args, "period") or "month"
    if period not in PERIOD_CHOICES:
        errors["period"] = f"must be one of {', '.join(PERIOD_CHOICES)}"
        period = "month"
    span = period_span(period, now, tz)
    start_text, end_text = _one(args, "from"), _one(args, "to")
    if start_text or end_text:
        start = _day(start_text, "from", tz, errors) if start_text else None
        end = _day(end_text, "to", tz, errors) if end_text else None
        if "from" not in errors and "to" not in errors:
            s = start.timestamp() if start else EPOCH_START
            e = (end + timedelta(days=1)).timestamp() if end else now + 1
            if e <= s:
                errors["to"] = "must not be before 'from'"
            label = f"{start_text or '…'} – {end_text or 'now'}"
            span, period = Span(s, e, label), "custom"
    by = _one(args, "by") or default_by
    if by not in DIMENSIONS:
        errors["by"] = f"must be one of {', '.join(DIMENSIONS)}"
    filt: dict[str, object] = {}
    for name in ("user", "group", "backend", "gpu_model"):
        value = _one(args, name)
        if not value:  # an empty field of the filter form: all
            continue
        if value and not _NAME.fullmatch(value):
            errors[name] = "must be a name (no control characters, at most 255 characters)"
            continue
        filt[name] = value
    kind = _one(args, "kind")
    if kind:
        if kind not in KINDS:
            errors["kind"] = f"must be one of {', '.join(KINDS)}"
        else:
            filt["kind"] = kind
    page = _int(_one(args, "page"), "page", 1, 10**6, 1, errors)
    limit = _int(_one(args, "limit"), "limit", 1, 1000, default_limit, errors)
    fmt = _one(args, "format") or "json"
    if fmt not in FORMATS:
        errors["format"] = f"must be one of {', '.join(FORMATS)}"
    if errors:
        raise ParamErrors(errors)
    user = filt.pop("user", None)
    filters = Filters(users=(user,) if user else (), group=filt.get("group"), backend=filt.get("backend"),
                      gpu_model=filt.get("gpu_model"), kind=filt.get("kind"))
    return Query(span, period, by, filters, page, limit, fmt, values)


def _int(text: str | None, name: str, low: int, high: int, default: int, errors: dict) -> int:
    if text is None or text == "":
        return default
    if not text.isdigit() or not (low <= int(text) <= high):
        errors[name] = f"must be a whole number from {low} to {high}"
        return default
    return int(text)


def series_spans(query: Query, now: float, tz: ZoneInfo, period: str, limit: int = 400) -> list[Span]:
    """The calendar periods (``day``, ``week``, ``month``) of the query's span, at most
    ``limit`` (the latest); "all" starts at the first record's period (the caller narrows)."""
    end = min(query.span.end, now + 1)
    return periods.between(query.span.start, end, period, tz, limit)
