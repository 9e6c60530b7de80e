"""The usage database's statements: pure builders of SQLAlchemy Core statements (no I/O;
`store` runs them). Durations are computed in SQL, clipped to the span asked for, with
running servers counted up to ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from sqlalchemy import and_, case, delete, func, insert, literal_column, or_, select, update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import GenericFunction
from sqlalchemy.types import Double

from .models import GROUPS, RECORDS, USER_SUMS_INDEX

#: the ways the aggregate can be grouped (the time ones by `period_sums`)
DIMENSIONS = ("user", "group", "backend", "gpu_model", "host", "day", "week", "month")


class _Greatest(GenericFunction):
    type = Double()
    name = "greatest"
    inherit_cache = True


class _Least(GenericFunction):
    type = Double()
    name = "least"
    inherit_cache = True


@compiles(_Greatest, "sqlite")
def _greatest_sqlite(element, compiler, **kw):  # SQLite's max(a, b, …) with several arguments is scalar
    return f"max({compiler.process(element.clauses, **kw)})"


@compiles(_Least, "sqlite")
def _least_sqlite(element, compiler, **kw):
    return f"min({compiler.process(element.clauses, **kw)})"


def greatest(*args: Any) -> ColumnElement:
    return _Greatest(*args)


def least(*args: Any) -> ColumnElement:
    return _Least(*args)


R = RECORDS.c


def hours_in(start: float, end: float, now: float) -> ColumnElement:
    """Hours of each record inside ``[start, end)``, running ones up to ``now``."""
    until = least(func.coalesce(R.stopped_at, now), end, now)
    return greatest(until - greatest(R.started_at, start), 0.0) / 3600.0


def overlaps(start: float, end: float) -> ColumnElement:
    return and_(R.started_at < end, or_(R.stopped_at.is_(None), R.stopped_at > start))


@dataclass(frozen=True)
class Filters:
    """What to count: every value None/empty means "all". ``users`` limits to those users
    (a non-admin always gets exactly their own name)."""

    users: tuple[str, ...] = ()
    group: str | None = None
    backend: str | None = None
    gpu_model: str | None = None
    kind: str | None = None
    gpus_only: bool = False

    def where(self) -> list[ColumnElement]:
        cond = []
        if self.users:
            cond.append(R.username.in_(self.users) if len(self.users) > 1 else R.username == self.users[0])
        if self.group:
            cond.append(R.id.in_(select(GROUPS.c.record_id).where(GROUPS.c.group_name == self.group)))
        if self.backend:
            cond.append(R.backend == self.backend)
        if self.gpu_model is not None:
            cond.append(R.gpu_model == self.gpu_model)
        if self.kind:
            cond.append(R.kind == self.kind)
        if self.gpus_only:
            cond.append(R.gpus > 0)
        return cond


# --------------------------------------------------------------------------- writes


def insert_record(values: dict) -> Any:
    return insert(RECORDS).values(**values)


def insert_groups(record_id: int, groups: Iterable[str]) -> Any | None:
    rows = [{"record_id": record_id, "group_name": g} for g in sorted(set(groups))]
    return insert(GROUPS).values(rows) if rows else None


def close_record(record_id: int, stopped_at: float, reason: str, stopped_by: str | None) -> Any:
    """Close an open record (a closed one is left as it is: the first reason wins)."""
    return (
        update(RECORDS)
        .where(R.id == record_id, R.stopped_at.is_(None))
        .values(stopped_at=greatest(stopped_at, R.started_at), stop_reason=reason, stopped_by=stopped_by,
                last_seen_at=greatest(stopped_at, R.last_seen_at))
    )


def close_at_last_seen(record_id: int, reason: str, stopped_by: str | None) -> Any:
    """Close an open record at the last time the hub saw it running (a server that ended
    while no hub watched it, or that the hub lost)."""
    return (
        update(RECORDS)
        .where(R.id == record_id, R.stopped_at.is_(None))
        .values(stopped_at=R.last_seen_at, stop_reason=reason, stopped_by=stopped_by)
    )


def lost_records(seen_before: float, exclude: Iterable[int]) -> Any:
    """Open server records last seen before ``seen_before`` that no spawner holds."""
    q = select(R.id).where(R.stopped_at.is_(None), R.kind == "server", R.last_seen_at < seen_before)
    ids = list(exclude)
    return q.where(R.id.not_in(ids)) if ids else q


def touch(record_ids: Iterable[int], now: float) -> Any:
    return update(RECORDS).where(R.id.in_(list(record_ids)), R.stopped_at.is_(None)).values(last_seen_at=now)


def delete_before(before: float) -> Any:
    return delete(RECORDS).where(R.stopped_at.is_not(None), R.stopped_at < before)


# --------------------------------------------------------------------------- reads


def record_by_id(record_id: int) -> Any:
    return select(RECORDS).where(R.id == record_id)


def open_records(kind: str | None = None) -> Any:
    q = select(RECORDS).where(R.stopped_at.is_(None))
    return q.where(R.kind == kind) if kind else q


def groups_of(record_ids: Iterable[int]) -> Any:
    return select(GROUPS.c.record_id, GROUPS.c.group_name).where(GROUPS.c.record_id.in_(list(record_ids)))


def gpu_hours_by_user(users: Iterable[str], start: float, end: float, now: float) -> Any:
    """(user, GPU-hours in ``[start, end)``) for each of ``users`` that has any."""
    return (
        select(R.username, func.sum(R.gpus * hours_in(start, end, now)))
        .where(R.username.in_(list(users)), R.gpus > 0, overlaps(start, end))
        .group_by(R.username)
    )


def gpu_hours_by_group(groups: Iterable[str], start: float, end: float, now: float) -> Any:
    """(group, GPU-hours in ``[start, end)``) of the records tagged with each group."""
    return (
        select(GROUPS.c.group_name, func.sum(R.gpus * hours_in(start, end, now)))
        .join(GROUPS, GROUPS.c.record_id == R.id)
        .where(GROUPS.c.group_name.in_(list(groups)), R.gpus > 0, overlaps(start, end))
        .group_by(GROUPS.c.group_name)
    )


def running_gpus_by_user(users: Iterable[str] | None = None) -> Any:
    q = select(R.username, func.sum(R.gpus)).where(R.stopped_at.is_(None), R.gpus > 0).group_by(R.username)
    return q.where(R.username.in_(list(users))) if users is not None else q


def running_gpus_by_group(groups: Iterable[str]) -> Any:
    return (
        select(GROUPS.c.group_name, func.sum(R.gpus))
        .join(GROUPS, GROUPS.c.record_id == R.id)
        .where(R.stopped_at.is_(None), R.gpus > 0, GROUPS.c.group_name.in_(list(groups)))
        .group_by(GROUPS.c.group_name)
    )


def _key(dimension: str) -> ColumnElement:
    return {
        "user": R.username,
        "group": GROUPS.c.group_name,
        "backend": R.backend,
        "gpu_model": R.gpu_model,
        "host": R.host,
    }[dimension]


def summary(dimension: str, start: float, end: float, now: float, filters: Filters = Filters()) -> Any:
    """Per value of ``dimension`` (user, group, backend, gpu_model, host): records, hours,
    GPU-hours and cost inside ``[start, end)``. Columns: key, records, hours, gpu_hours, cost.
    By group, a record counts once for each of its groups (a record of a user in no group
    under the key None)."""
    hours = hours_in(start, end, now)
    key = _key(dimension)
    q = select(
        key.label("key"),
        func.count().label("records"),
        func.sum(hours).label("hours"),
        func.sum(R.gpus * hours).label("gpu_hours"),
        func.sum(R.price_per_hour * hours).label("cost"),
    ).where(overlaps(start, end), *filters.where())
    if dimension == "group":
        q = q.select_from(RECORDS.outerjoin(GROUPS, GROUPS.c.record_id == R.id))
    elif dimension == "user" and not filters.where():
        # SQLite would walk the (username, started_at) index for the GROUP BY and read every
        # wide row; the sums index in user order covers this query and needs no sort
        q = q.with_hint(RECORDS, f"INDEXED BY {USER_SUMS_INDEX}", "sqlite")
    return q.group_by(key).order_by(func.sum(R.gpus * hours).desc(), key)


def totals(start: float, end: float, now: float, filters: Filters = Filters()) -> Any:
    """One row: records, hours, GPU-hours, cost inside ``[start, end)``."""
    hours = hours_in(start, end, now)
    return select(
        func.count().label("records"),
        func.coalesce(func.sum(hours), 0.0).label("hours"),
        func.coalesce(func.sum(R.gpus * hours), 0.0).label("gpu_hours"),
        func.coalesce(func.sum(R.price_per_hour * hours), 0.0).label("cost"),
    ).where(overlaps(start, end), *filters.where())


def _number(value: float) -> ColumnElement:
    """A boundary as an SQL literal: ``repr`` of a float reads back as the same double, and
    the same text each time lets GROUP BY match the selected expression on every dialect."""
    return literal_column(repr(float(value)))


def period_end_of(moment: ColumnElement, ends: Sequence[float]) -> ColumnElement:
    """The first of ``ends`` (ascending) that is after ``moment`` (``ends[-1]`` for any
    later moment): the end of the period ``moment`` falls in. A CASE nested as a binary
    search: log2(len(ends)) comparisons a row whatever the periods' lengths (months, DST
    days), computed from the indexed column itself."""
    if len(ends) == 1:
        return _number(ends[0])
    mid = len(ends) // 2
    return case((moment < _number(ends[mid - 1]), period_end_of(moment, ends[:mid])),
                else_=period_end_of(moment, ends[mid:]))


def _parts(start: float, ends: Sequence[float], now: float) -> tuple[ColumnElement, ColumnElement, ColumnElement]:
    """Per record: the end of the period it starts in (a record that started before
    ``start`` in the first one), and the begin and until of its part inside
    ``[start, ends[-1])`` (running ones up to ``now``)."""
    period_end = period_end_of(R.started_at, ends)
    begin = greatest(R.started_at, start)
    until = least(func.coalesce(R.stopped_at, now), ends[-1], now)
    return period_end, begin, until


def period_sums(ends: Sequence[float], start: float, now: float, filters: Filters = Filters()) -> Any:
    """Per calendar period (from ``start`` up to the ascending period ``ends``), the records
    that start in it (a record that started before ``start`` in the first one) and the sums of
    their parts inside ``[start, ends[-1])``: columns period_end, hours, gpu_hours, cost. The
    parts past each record's first period are taken out and shared among the following
    periods with `period_overflow` (few records): summing the whole part here evaluates the
    period's CASE once a row."""
    period_end, begin, until = _parts(start, ends, now)
    hours = (until - begin) / 3600.0
    return (
        select(period_end.label("period_end"), func.sum(hours).label("hours"),
               func.sum(R.gpus * hours).label("gpu_hours"), func.sum(R.price_per_hour * hours).label("cost"))
        .where(overlaps(start, ends[-1]), until > begin, *filters.where())
        .group_by(literal_column("period_end"))
    )


def period_overflow(ends: Sequence[float], start: float, now: float, filters: Filters = Filters()) -> Any:
    """The records that run past the end of the period they start in (few: those that cross
    a midnight, a Monday, a 1st): (the end of that period, until: the end of the record's part
    in the whole span, stopped_at, gpus, price_per_hour)."""
    period_end, _, until = _parts(start, ends, now)
    return (
        select(period_end.label("from"), until.label("until"), R.stopped_at, R.gpus, R.price_per_hour)
        .where(overlaps(start, ends[-1]), until > period_end, *filters.where())
    )


def history(filters: Filters, start: float | None, end: float | None, limit: int, offset: int = 0) -> Any:
    """Records newest first (running ones first among equals), with their groups apart."""
    q = select(RECORDS).where(*filters.where())
    if start is not None and end is not None:
        q = q.where(overlaps(start, end))
    return q.order_by(R.started_at.desc(), R.id.desc()).limit(limit).offset(offset)


def count(filters: Filters, start: float | None = None, end: float | None = None) -> Any:
    q = select(func.count()).select_from(RECORDS).where(*filters.where())
    if start is not None and end is not None:
        q = q.where(overlaps(start, end))
    return q


def first_start(filters: Filters) -> Any:
    return select(func.min(R.started_at)).where(*filters.where())


def _distinct(column: ColumnElement, table: Any) -> Any:
    """The distinct values of an indexed ``column``, sorted: one index seek per value (a
    recursive "next value after the last one"), not a scan of every row."""
    seen = select(func.min(column).label("value")).select_from(table).cte("seen", recursive=True)
    after = select(func.min(column)).select_from(table).where(column > seen.c.value).scalar_subquery()
    seen = seen.union_all(select(after).where(seen.c.value.is_not(None)))
    return select(seen.c.value).where(seen.c.value.is_not(None)).order_by(seen.c.value)


def distinct_values(column: str) -> Any:
    """The values an admin may filter by (backend, gpu_model), sorted."""
    return _distinct({"backend": R.backend, "gpu_model": R.gpu_model}[column], RECORDS)


def distinct_groups() -> Any:
    return _distinct(GROUPS.c.group_name, GROUPS)
