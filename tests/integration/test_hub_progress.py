"""The spawn page's progress stream (JupyterHub's /progress API, what the page shows) with a
REAL hub and proxy: the start's steps with their share of the bar, in users' words."""

from __future__ import annotations

import json
import threading

import pytest

from gridspawner.progress_steps import STEPS

pytestmark = pytest.mark.hub


def read_progress(hub, username: str) -> list[dict]:
    """The progress stream of the start under way (opened as soon as the hub has one)."""
    url = f"{hub.url}/hub/api/users/{username}/server/progress"
    events: list[dict] = []
    for _ in range(400):  # the spawn request is being sent in another thread
        with hub.session.get(url, stream=True, timeout=90, headers={"Accept": "text/event-stream"}) as r:
            for line in r.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    events.append(json.loads(line[5:]))
                    if events[-1].get("ready") or events[-1].get("failed"):
                        return events
        threading.Event().wait(0.02)  # no start yet: the stream ended at once
    raise AssertionError(f"no progress stream: {events}")


@pytest.mark.jh5
def test_progress_is_steps_with_their_share_in_users_words(hub, username):
    hub.create_user(username)
    answers: list = []
    spawn = threading.Thread(target=lambda: answers.append(
        hub.spawn(username, {"backend": "local", "image": "lab", "gpus": 1, "gpu_memory": 40})), daemon=True)
    spawn.start()
    try:
        events = read_progress(hub, username)
        spawn.join(90)
        assert answers and answers[0].status_code in (201, 202), answers
        # (JupyterHub's own first event, "Server requested", and its last, "ready", aside)
        steps = [e for e in events if not e.get("ready") and e.get("message") != "Server requested"]
        assert events[-1].get("ready"), events
        if not steps:  # ready before the stream opened: JupyterHub sends only "ready"
            pytest.skip("the server was ready before the progress stream opened")
        messages = [e["message"] for e in steps]
        titles = [s.title for s in STEPS]
        assert all(m.split(": ", 1)[0] in titles for m in messages), messages
        order = [titles.index(m.split(": ", 1)[0]) for m in messages]
        assert order == sorted(order), messages
        assert "Finding GPUs: Your server goes to This machine, with 1 × NVIDIA A100-PCIE-40GB 40 GB" in messages
        assert "Waiting for Jupyter: The server is up; connecting" in messages
        for m in messages:
            assert "process" not in m and "localhost" not in m and "pid" not in m.lower(), m
        bar = [e["progress"] for e in steps]
        assert bar == sorted(bar) and bar[-1] < 100, bar
    finally:
        hub.stop_server(username)
