"""Reading a test hub's usage records straight from its database (the SQLite file that
gridspawner makes beside the hub's own), and waiting for a condition."""

from __future__ import annotations

import time

from sqlalchemy import create_engine, select


def records(hub, username: str) -> list[dict]:
    """``username``'s usage records, oldest first, each with its ``groups``."""
    from gridspawner.usage.models import GROUPS, RECORDS

    engine = create_engine(f"sqlite:///{hub.workdir / 'gridspawner-usage.sqlite'}")
    try:
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(
                select(RECORDS).where(RECORDS.c.username == username).order_by(RECORDS.c.id))]
            for r in rows:
                r["groups"] = sorted(g for (g,) in conn.execute(
                    select(GROUPS.c.group_name).where(GROUPS.c.record_id == r["id"])))
        return rows
    finally:
        engine.dispose()


def wait_for(predicate, timeout: float, what: str):
    """``predicate()``'s first true value, polled every 0.3 s; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")
