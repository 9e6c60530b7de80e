"""FormFeedback: a refused submission is shown on its own server's form, once, and the
store stays bounded in size and age."""

from __future__ import annotations

from gridspawner.form.feedback import FormFeedback


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_feedback_is_per_server_and_taken_once():
    clock = Clock()
    fb = FormFeedback(clock=clock)
    fb.put("alice", "a", {"gpus": 99}, {"gpus": "too many"})
    clock.now += 60  # long after the refused submission: no re-render is pending
    assert fb.take("alice", "b") is None
    assert fb.take("alice", "") is None
    assert fb.take("bob", "a") is None
    assert fb.take("alice", "a") == ({"gpus": 99}, {"gpus": "too many"})
    assert fb.take("alice", "a") is None
    assert len(fb) == 0


def test_the_default_spawners_render_right_after_a_refusal_shows_it():
    """JupyterHub re-renders a refused named-server form through the default spawner."""
    clock = Clock()
    fb = FormFeedback(clock=clock, rerender_window=5)
    fb.put("alice", "", {"image": "x"}, {"image": "old"})
    clock.now += 30
    fb.put("alice", "a", {"gpus": 99}, {"gpus": "too many"})
    clock.now += 0.2
    assert fb.take("alice", "") == ({"gpus": 99}, {"gpus": "too many"})  # the newest, just made
    assert fb.take("alice", "") == ({"image": "x"}, {"image": "old"})  # then its own


def test_feedback_expires_and_is_bounded():
    clock = Clock()
    fb = FormFeedback(clock=clock, ttl=600, max_entries=3)
    fb.put("alice", "", {}, {"gpus": "x"})
    clock.now += 601
    assert fb.take("alice", "") is None and len(fb) == 0
    for i in range(10):
        fb.put(f"user{i}", "", {}, {"gpus": str(i)})
        clock.now += 1
    assert len(fb) == 3
    assert fb.take("user0", "") is None
    assert fb.take("user9", "") == ({}, {"gpus": "9"})


def test_a_new_refusal_replaces_the_older_one_of_the_same_server():
    clock = Clock()
    fb = FormFeedback(clock=clock, max_entries=2)
    fb.put("alice", "a", {}, {"gpus": "first"})
    fb.put("bob", "", {}, {"gpus": "b"})
    fb.put("alice", "a", {}, {"gpus": "second"})  # refreshed: now the newest, bob's is older
    fb.put("carol", "", {}, {"gpus": "c"})
    assert fb.take("bob", "") is None
    assert fb.take("alice", "a") == ({}, {"gpus": "second"})
