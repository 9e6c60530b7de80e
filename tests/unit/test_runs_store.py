"""The runs table (SQLite, real SQLAlchemy): limits per user and per group under
concurrent submits, compare-and-set moves, the queue's order and its heads."""

from __future__ import annotations

import asyncio
import time

import pytest

from gridspawner.runs.store import LimitReached, RunStore
from gridspawner.usage.store import UsageStore


@pytest.fixture
async def store(tmp_path):
    usage = UsageStore(f"sqlite:///{tmp_path}/u.sqlite")
    usage.upgrade()
    s = RunStore(usage.engine)
    yield s
    s.close()
    usage.close()


def row(i: int, user: str = "alice", groups: str = "[]", backend: str = "b", status: str = "queued") -> dict:
    now = 1000.0 + i
    return {"id": f"run{i:012d}", "username": user, "name": "", "status": status, "backend": backend,
            "backend_kind": "local", "profile": "", "image": "i", "options": "{}", "parameters": "{}",
            "bindings": "{}", "warnings": "[]", "groups": groups, "gpus": 1, "gpu_memory_gb": 0, "gpu_model": "",
            "host": "", "submitted_at": now, "updated_at": now, "cancel_requested": 0, "log_tail": ""}


async def test_user_and_group_limits_hold_under_concurrent_submits(store):
    limits = [("you", "user", "alice", 3)]
    got = await asyncio.gather(*(store.submit(row(i), limits) for i in range(8)), return_exceptions=True)
    assert sum(1 for g in got if g is None) == 3 and sum(isinstance(g, LimitReached) for g in got) == 5
    # a group limit counts every member's runs; "_" and "%" in a name are no wildcards
    g = '["a_b"]'
    glimit = lambda user: [("you", "user", user, 10), ("the group", "group", "a_b", 2)]  # noqa: E731
    await store.submit(row(20, "bob", g), glimit("bob"))
    await store.submit(row(21, "carol", '["axb"]'), glimit("carol"))  # not the group a_b
    await store.submit(row(22, "carol", g), glimit("carol"))
    with pytest.raises(LimitReached, match="at most 2 runs"):
        await store.submit(row(23, "dave", g), glimit("dave"))
    # finished runs do not count
    assert await store.move("run000000000020", ("queued",), status="succeeded", finished_at=time.time())
    await store.submit(row(24, "dave", g), glimit("dave"))


async def test_compare_and_set_queue_order_and_heads(store):
    for i, b in enumerate(["x", "y", "x", "y"]):
        await store.submit(row(i, backend=b))
    assert [r["id"][-1] for r in await store.queued("x")] == ["0", "2"]
    assert [(r["backend"], r["id"][-1]) for r in await store.heads()] == [("x", "0"), ("y", "1")]
    assert await store.move("run000000000000", ("queued",), status="cancelled")
    assert not await store.move("run000000000000", ("queued",), status="running")  # lost the race
    assert [r["id"][-1] for r in await store.heads()] == ["1", "2"]
    assert not await store.delete("run000000000001")  # active: kept
    assert await store.delete("run000000000000")
    listed = await store.list("alice")
    assert [r["id"][-1] for r in listed] == ["3", "2", "1"]
    assert await store.list("alice", since=listed[0]["updated_at"]) == []
