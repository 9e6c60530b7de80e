"""The usage database: its Alembic schema, its writes and its sums (a real SQLite file)."""

from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from gridspawner.usage import periods
from gridspawner.usage.models import VERSION_TABLE, Base
from gridspawner.usage.queries import Filters
from gridspawner.usage.store import UsageStore, current_revision, default_url, table_names

UTC = ZoneInfo("UTC")
H = 3600.0
T0 = 1_780_000_000.0  # a fixed "now"-ish moment (2026-05-28)


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def store(tmp_path):
    s = UsageStore(f"sqlite:///{tmp_path / 'usage.sqlite'}")
    s.upgrade()
    yield s
    s.close()


def values(user="ann", gpus=1, started=T0, backend="local", model="Tesla T4", price=0.5, **kw):
    row = {
        "kind": "server", "run_id": None, "username": user, "server_name": "", "backend": backend,
        "backend_kind": "local", "host": "localhost", "gpus": gpus, "gpu_model": model, "gpu_memory_gb": 16,
        "cpu": None, "memory_gb": None, "image": "lab", "profile": "", "price_per_hour": price,
        "currency": "EUR", "started_at": started, "last_seen_at": started,
    }
    row.update(kw)
    return row


def test_the_migrated_schema_is_the_models_schema(tmp_path):
    """Alembic's version 0001 makes exactly what models.py declares (a model change needs a
    migration), in gridspawner's own tables and version table only."""
    store = UsageStore(f"sqlite:///{tmp_path / 'u.sqlite'}")
    try:
        assert current_revision(store.engine) is None
        assert store.upgrade() == "0004"
        assert store.upgrade() == "0004"  # idempotent: a restarted hub upgrades nothing
        assert table_names(store.engine) == sorted(
            ["gridspawner_usage_records", "gridspawner_usage_groups", "gridspawner_runs", VERSION_TABLE])
        with store.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            diff = compare_metadata(context, Base.metadata)
        assert diff == []
    finally:
        store.close()


def test_a_database_shared_with_jupyterhub_keeps_its_tables(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(text("INSERT INTO alembic_version VALUES ('hub-revision')"))
    store = UsageStore(url)
    try:
        store.upgrade()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "hub-revision"
    finally:
        store.close()
        engine.dispose()


def test_sqlite_file_is_private(tmp_path):
    store = UsageStore(f"sqlite:///{tmp_path / 'p.sqlite'}")
    store.upgrade()
    store.close()
    assert (tmp_path / "p.sqlite").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("hub_url,expected", [
    ("sqlite:////srv/jupyterhub/jupyterhub.sqlite", "sqlite:////srv/jupyterhub/gridspawner-usage.sqlite"),
    ("sqlite:///jupyterhub.sqlite", "sqlite:////work/hub/gridspawner-usage.sqlite"),
    ("sqlite:///:memory:", "sqlite:////work/hub/gridspawner-usage.sqlite"),
    ("postgresql://hub:pw@db/jhub", "postgresql://hub:pw@db/jhub"),
])
def test_default_url_is_beside_the_hubs_database(hub_url, expected):
    assert default_url(hub_url, cwd="/work/hub") == expected


def test_open_close_and_the_first_reason_wins(store):
    rid = run(store.open(values(), ["b", "a"]))
    assert run(store.open_records("server"))[0]["id"] == rid
    assert run(store.close_record(rid, T0 + 2 * H, "user", "ann"))
    assert not run(store.close_record(rid, T0 + 3 * H, "admin", "bob"))
    rec = run(store.record(rid))
    assert (rec["stopped_at"], rec["stop_reason"], rec["stopped_by"]) == (T0 + 2 * H, "user", "ann")
    [row] = run(store.history(Filters(users=("ann",))))
    assert row["groups"] == ["a", "b"]


def test_a_lost_record_closes_when_it_was_last_seen(store):
    rid = run(store.open(values()))
    run(store.touch([rid], T0 + H))
    assert run(store.lost_records(T0 + 2 * H, exclude=[])) == [rid]
    assert run(store.lost_records(T0 + 2 * H, exclude=[rid])) == []
    assert run(store.close_at_last_seen(rid, "hub_lost"))
    rec = run(store.record(rid))
    assert rec["stopped_at"] == T0 + H and rec["stop_reason"] == "hub_lost"


def test_gpu_hours_by_user_group_and_period(store):
    """GPU-hours = GPUs × hours, clipped to the period, running servers counted up to now."""
    day = periods.current(T0, "day", UTC)
    # 2 GPUs for 3 h, starting 1 h before the day: 2 h inside the day → 4 GPU-hours
    a = run(store.open(values(gpus=2, started=day.start - H), ["ml"]))
    run(store.close_record(a, day.start + 2 * H, "user"))
    # 1 GPU still running since 1 h into the day; "now" is 4 h into the day → 3 GPU-hours
    run(store.open(values(gpus=1, started=day.start + H), ["ml"]))
    # another user, no GPU: no GPU-hours, but hours
    b = run(store.open(values(user="bob", gpus=0, model="", started=day.start), ["ml"]))
    run(store.close_record(b, day.start + H, "user"))
    now = day.start + 4 * H
    assert run(store.gpu_hours_by_user(["ann", "bob"], day, now)) == pytest.approx({"ann": 7.0})
    assert run(store.gpu_hours_by_group(["ml"], day, now)) == pytest.approx({"ml": 7.0})
    assert run(store.running_gpus_by_user()) == {"ann": 1}
    by_user = {r["key"]: r for r in run(store.summary("user", day, now))}
    assert by_user["ann"]["gpu_hours"] == pytest.approx(7.0)
    assert by_user["ann"]["cost"] == pytest.approx(0.5 * (2 + 3))  # price per server-hour
    assert by_user["bob"]["hours"] == pytest.approx(1.0) and by_user["bob"]["gpu_hours"] == 0
    totals = run(store.totals(day, now))
    assert totals["records"] == 3 and totals["gpu_hours"] == pytest.approx(7.0)
    # per hour buckets of the same records (bucketing in Python) agree with SQL's sums
    hours = [periods.Span(day.start + i * H, day.start + (i + 1) * H, str(i)) for i in range(4)]
    series = run(store.series(hours, now))
    assert [b.gpu_hours for b in series] == pytest.approx([2, 3, 1, 1])


def test_summary_by_group_and_filters(store):
    day = periods.current(T0, "day", UTC)
    now = day.start + 2 * H
    run(store.open(values(user="ann", gpus=1, started=day.start), ["ml", "phys"]))
    run(store.open(values(user="bob", gpus=2, started=day.start, backend="k8s", model="A100"), ["ml"]))
    by_group = {r["key"]: r["gpu_hours"] for r in run(store.summary("group", day, now))}
    assert by_group == pytest.approx({"ml": 6.0, "phys": 2.0})
    only_k8s = run(store.summary("gpu_model", day, now, Filters(backend="k8s")))
    assert [(r["key"], r["gpu_hours"]) for r in only_k8s] == [("A100", pytest.approx(4.0))]
    assert run(store.count(Filters(group="phys"))) == 1
    assert run(store.choices()) == {"backend": ["k8s", "local"], "gpu_model": ["A100", "Tesla T4"],
                                    "group": ["ml", "phys"]}


@pytest.mark.parametrize("period, tz", [("day", "Europe/Paris"), ("week", "UTC"), ("week", "America/New_York"),
                                        ("month", "Europe/Paris")])
def test_series_in_sql_equals_the_python_computation(store, period, tz):
    """The database's sums per day/week/month (the part of each record in the period it
    starts in, the rest shared out) equal the plain Python split of every record over the
    periods (`buckets.bucketed`), on random records: running ones, ones that started before
    the span, ones longer than a period, DST changes, months of different lengths."""
    import random

    from gridspawner.usage.buckets import bucketed

    rnd = random.Random(f"{period}-{tz}")
    zone = ZoneInfo(tz)
    now = T0 + 0.5 * H
    spans = periods.between(T0 - 200 * 86400, now + 1, period, zone)
    rows, backends = [], []
    for _ in range(400):
        started = now - rnd.uniform(0, 240 * 86400)
        length = rnd.choice([rnd.uniform(60, 8 * H), rnd.uniform(1, 40 * 86400)])
        running = rnd.random() < 0.05
        stopped = None if running else min(started + length, now)
        gpus, price = rnd.choice([0, 1, 2, 4]), rnd.choice([0.0, 0.35, 1.2])
        backend = rnd.choice(["local", "k8s"])
        rid = run(store.open(values(gpus=gpus, started=started, price=price, backend=backend)))
        if stopped is not None:
            run(store.close_record(rid, stopped, "user"))
        rows.append((started, stopped, gpus, price))
        backends.append(backend)
    expected = bucketed(rows, spans, now)
    got = run(store.series(spans, now))
    assert [b.label for b in got] == [b.label for b in expected]
    for field in ("hours", "gpu_hours", "cost"):
        assert [getattr(b, field) for b in got] == pytest.approx([getattr(b, field) for b in expected],
                                                                   rel=1e-9, abs=1e-9), field
    assert sum(b.gpu_hours for b in got) > 0
    # a filter narrows both the same way
    k8s = Filters(backend="k8s")
    k8s_rows = [r for r, backend in zip(rows, backends) if backend == "k8s"]
    assert [b.gpu_hours for b in run(store.series(spans, now, k8s))] == pytest.approx(
        [b.gpu_hours for b in bucketed(k8s_rows, spans, now)], rel=1e-9, abs=1e-9)
