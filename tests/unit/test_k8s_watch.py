"""The shared watch loop against a scripted API: resume from resourceVersion, 410 → one
re-list with the differences delivered as events, errors → retried, waiters woken."""

from __future__ import annotations

import asyncio
import json

import pytest

from gridspawner.backends.kubernetes import watch as watch_mod
from gridspawner.backends.kubernetes.api import ApiError, call
from gridspawner.backends.kubernetes.watch import SharedWatch


class _Content:
    def __init__(self, chunks):
        self._chunks = chunks

    async def iter_any(self):
        for c in self._chunks:
            await asyncio.sleep(0)
            yield c


class FakeResponse:
    def __init__(self, status=200, body=None, lines=(), reason="OK", headers=None):
        self.status = status
        self.reason = reason
        self.headers = headers or {}
        self._body = json.dumps(body).encode() if body is not None else b""
        data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
        # split mid-line to prove lines are reassembled across chunks
        self.content = _Content([data[i : i + 7] for i in range(0, len(data), 7)])

    async def read(self):
        return self._body

    def release(self):
        pass


def pod(name, rv, phase="Pending", uid=None):
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rv), "uid": uid or name}, "status": {"phase": phase}}


class ScriptedAPI:
    """Answers list and watch calls from a script; records the parameters of each call."""

    def __init__(self, script):
        self.script = list(script)
        self.calls = []

    async def __call__(self, **kw):
        self.calls.append(kw)
        if not self.script:
            await asyncio.sleep(3600)
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(watch_mod, "backoff_delay", lambda attempt, base=0.5, cap=10.0: 0.01)


async def test_list_then_watch_resumes_and_relists_after_gone():
    api = ScriptedAPI(
        [
            FakeResponse(body={"metadata": {"resourceVersion": "10"}, "items": [pod("a", 5), pod("b", 6)]}),
            # a watch that delivers a change, a bookmark, then ends (server timeout)
            FakeResponse(lines=[{"type": "MODIFIED", "object": pod("a", 11, "Running")}, {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}}]),
            # resumed from 15; the connection drops
            ConnectionResetError("dropped"),
            # resumed from 15 again: 410 Gone as an ERROR event
            FakeResponse(lines=[{"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}}]),
            # re-list: b was deleted meanwhile, c appeared
            FakeResponse(body={"metadata": {"resourceVersion": "30"}, "items": [pod("a", 11, "Running"), pod("c", 29)]}),
        ]
    )
    w = SharedWatch("pods", api, label_selector="app=x")
    seen = []
    w.subscribe(lambda kind, obj: seen.append((kind, obj["metadata"]["name"])))
    await w.ready(5)
    assert set(w.objects) == {"ns/a", "ns/b"}
    got = await w.wait_for("ns/c", lambda o: o is not None, timeout=5)
    assert got["metadata"]["resourceVersion"] == "29"
    assert w.get("ns/b") is None
    assert ("DELETED", "b") in seen and ("ADDED", "c") in seen and ("MODIFIED", "a") in seen
    assert w.relists_after_gone == 1 and w.lists == 2
    watches = [c for c in api.calls if c.get("watch")]
    assert [c["resource_version"] for c in watches] == ["10", "15", "15", "30"][: len(watches)]
    assert all(c["label_selector"] == "app=x" for c in api.calls)
    await w.close()


async def test_http_410_on_watch_start_relists():
    api = ScriptedAPI(
        [
            FakeResponse(body={"metadata": {"resourceVersion": "1"}, "items": []}),
            FakeResponse(status=410, reason="Gone", body={"code": 410}),
            FakeResponse(body={"metadata": {"resourceVersion": "7"}, "items": [pod("a", 7)]}),
        ]
    )
    w = SharedWatch("pods", api)
    await w.ready(5)
    await w.wait_for("ns/a", lambda o: o is not None, timeout=5)
    assert w.relists_after_gone == 1
    await w.close()


async def test_first_list_error_is_raised_to_waiters_then_recovers():
    api = ScriptedAPI(
        [
            FakeResponse(status=403, reason="Forbidden", body={"message": "nodes is forbidden"}),
            FakeResponse(body={"metadata": {"resourceVersion": "1"}, "items": [pod("a", 1)]}),
        ]
    )
    api.script.insert(1, FakeResponse(status=403, reason="Forbidden", body={"message": "nodes is forbidden"}))
    w = SharedWatch("nodes", api)
    with pytest.raises(ApiError) as info:
        await w.ready(5)  # a permanent error is raised at once, not after the timeout
    assert info.value.status == 403
    for _ in range(100):  # the loop keeps trying in the background (RBAC may be fixed)
        if w.synced:
            break
        await asyncio.sleep(0.01)
    await w.ready(5)
    assert "ns/a" in w.objects
    await w.close()


async def test_events_watch_does_not_replay_history_but_delivers_new_and_relisted():
    api = ScriptedAPI(
        [
            FakeResponse(body={"metadata": {"resourceVersion": "5"}, "items": [{"metadata": {"name": "e0", "uid": "e0", "resourceVersion": "4"}}]}),
            FakeResponse(lines=[{"type": "ADDED", "object": {"metadata": {"name": "e1", "uid": "e1", "resourceVersion": "6"}}}]),
            FakeResponse(lines=[{"type": "ERROR", "object": {"code": 410}}]),
            FakeResponse(
                body={
                    "metadata": {"resourceVersion": "9"},
                    "items": [
                        {"metadata": {"name": "e1", "uid": "e1", "resourceVersion": "6"}},  # seen: not again
                        {"metadata": {"name": "e2", "uid": "e2", "resourceVersion": "8"}},  # missed: delivered
                    ],
                }
            ),
        ]
    )
    w = SharedWatch("events", api, cache=False)
    got = []
    w.subscribe(lambda kind, obj: got.append(obj["metadata"]["name"]))
    await w.ready(5)
    for _ in range(200):
        if "e2" in got:
            break
        await asyncio.sleep(0.01)
    assert got == ["e1", "e2"]
    assert w.objects == {}
    await w.close()


async def test_call_retries_transient_errors(monkeypatch):
    monkeypatch.setattr("gridspawner.backends.kubernetes.api.backoff_delay", lambda attempt, base=0.2, cap=5.0: 0.001)
    answers = [
        FakeResponse(status=500, reason="Internal Server Error", body={"message": "etcdserver: leader changed"}),
        FakeResponse(status=429, reason="Too Many Requests", body={}, headers={"Retry-After": "0"}),
        asyncio.TimeoutError(),
        FakeResponse(status=201, body={"metadata": {"name": "ok"}}),
    ]

    async def fn(*args, **kw):
        a = answers.pop(0)
        if isinstance(a, BaseException):
            raise a
        return a

    assert (await call(fn, retries=5))["metadata"]["name"] == "ok"

    answers[:] = [FakeResponse(status=422, reason="Unprocessable Entity", body={"message": "bad"})]
    with pytest.raises(ApiError) as info:
        await call(fn, retries=5)
    assert info.value.status == 422 and info.value.message == "bad"

    answers[:] = [FakeResponse(status=503, reason="Unavailable", body={}) for _ in range(3)]
    with pytest.raises(ApiError):
        await call(fn, retries=2)  # bounded
    assert answers == []
