"""Injection canaries: hostile strings in every string field, via REST and via the form.
Each must be refused with 400 and nothing may run: the canary file never appears, no
session directory is made, no server process exists."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.hub


def payloads(canary: Path) -> dict[str, str]:
    touch = f"touch {canary}"
    return {
        "dollar-paren": f"$({touch})",
        "semicolons": f";{touch};",
        "backticks": f"`{touch}`",
        "newlines": f"lab\n{touch}\n",
        "nul": f"lab\0; {touch}",
        "pipe-amp": f"x || {touch} && {touch} | sh",
        "quotes": f"'\"; {touch}; echo \"'",
        "unicode": f"läb ☃ \u202e\u200b {touch} \U0001F600",
        "template": "{{7*7}} ${HOME} %(x)s {0} " + touch,
        "path": f"../../../../{canary}",
        "huge": "A" * 10240 + f"$({touch})",
    }


@pytest.fixture
def canary(tmp_path_factory):
    # under /tmp like an attacker would write; unique per test
    path = Path("/tmp") / f"canary-{uuid.uuid4().hex}"
    yield path
    assert not path.exists(), f"canary {path} was created: something ran user input"
    if path.exists():
        path.unlink()


def _assert_nothing_ran(hub, username, canary, before):
    assert not canary.exists(), f"canary {canary} was created"
    assert hub.server(username) is None
    assert not hub.server_pids(username)
    root = hub.session_root
    assert (sorted(os.listdir(root)) if root.exists() else []) == before


def _sessions(hub):
    root = hub.session_root
    return sorted(os.listdir(root)) if root.exists() else []


@pytest.mark.parametrize("field", ["backend", "image", "profile", "gpus", "gpu_memory", "unknown-value", "unknown-key"])
def test_rest_canaries(hub, username, canary, field):
    hub.create_user(username)
    before = _sessions(hub)
    for name, payload in payloads(canary).items():
        if field == "unknown-value":
            options = {"colour": payload}
            expect = "colour"
        elif field == "unknown-key":
            options = {payload: "x"}
            expect = "unknown option"
        else:
            options = {field: payload}
            expect = field
        r = hub.spawn(username, options)
        assert r.status_code == 400, (name, r.status_code, r.text[:300])
        message = r.json()["message"]
        assert expect in message, (name, message[:300])
        assert len(message) < 2000, "a huge value must not be echoed back whole"
    _assert_nothing_ran(hub, username, canary, before)


@pytest.mark.jh5
def test_rest_canaries_in_every_field_at_once(hub, username, canary):
    hub.create_user(username)
    before = _sessions(hub)
    for name, payload in payloads(canary).items():
        options = {f: payload for f in ("backend", "image", "profile", "cpu", "memory", "mounts")}
        options[payload] = payload
        r = hub.spawn(username, options)
        assert r.status_code == 400, (name, r.status_code, r.text[:300])
    _assert_nothing_ran(hub, username, canary, before)


@pytest.mark.parametrize("field", ["backend", "image", "profile", "gpus", "unknown"])
def test_form_canaries(hub, username, canary, field):
    browser = hub.form_session(username)
    try:
        before = _sessions(hub)
        for name, payload in payloads(canary).items():
            fields = {"backend": "local", "image": "lab", "gpus": "0"}
            if field == "unknown":
                fields[payload] = payload
            else:
                fields[field] = payload
            r = browser.post_form(fields)
            assert r.status_code == 400, (name, r.status_code, r.text[:300])
        _assert_nothing_ran(hub, username, canary, before)
    finally:
        browser.close()
