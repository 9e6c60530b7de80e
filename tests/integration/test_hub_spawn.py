"""REST spawns through a real hub + proxy: good options start a reachable server, bad
options are refused with 400 naming the field and launch nothing."""

from __future__ import annotations

import jupyterhub
import pytest

from hubtools import procs

pytestmark = pytest.mark.hub


def session_entries(hub) -> list[str]:
    root = hub.session_root
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


@pytest.mark.jh5
def test_rest_spawn_reaches_server_through_proxy(hub, username):
    server = hub.spawn_ready(username, {"backend": "local", "image": "lab", "gpus": 0})
    try:
        assert server["url"] == f"/user/{username}/"
        r = hub.server_status(username)
        assert r.status_code == 200, r.text
        assert "started" in r.json()
        pid = hub.server_pid(username)
        assert procs.alive(pid)
        assert procs.environ(pid).get("CUDA_VISIBLE_DEVICES", "") in ("", "NoDevFiles")
    finally:
        hub.stop_server(username)
    assert hub.server(username) is None
    assert not hub.server_pids(username), "the server's processes outlived stop"
    assert hub.server_status(username).status_code != 200


def test_rest_spawn_second_environment(hub, username):
    """The "minimal" environment's env reaches the server process."""
    hub.spawn_ready(username, {"image": "minimal"})
    try:
        assert hub.server_status(username).status_code == 200
        env = procs.environ(hub.server_pid(username))
        assert env.get("GRIDSPAWNER_TEST_IMAGE") == "minimal"
    finally:
        hub.stop_server(username)


@pytest.mark.jh5
def test_named_server(hub, username):
    hub.spawn_ready(username, {"gpus": 0}, server_name="second")
    try:
        assert hub.server_status(username, "second").status_code == 200
        assert hub.server_pids(username, "second")
    finally:
        hub.stop_server(username, "second")
    assert not hub.server_pids(username, "second")


BAD_OPTIONS = [
    ({"backend": "nowhere"}, "backend"),
    ({"image": "no-such-image"}, "image"),
    ({"gpus": -1}, "gpus"),
    ({"gpus": 99}, "gpus"),
    ({"gpus": "2"}, "gpus"),
    ({"gpus": 1.5}, "gpus"),
    ({"gpus": 1, "gpu_memory": 33}, "gpu_memory"),
    ({"profile": "no-such-profile"}, "profile"),
    ({"colour": "red"}, "colour"),
    ({"mounts": "s3://bucket"}, "mounts"),
    ({"cpu": 4}, "cpu"),
]


@pytest.mark.parametrize("options,field", BAD_OPTIONS, ids=[f for _, f in BAD_OPTIONS])
def test_rest_bad_options_400_names_field(hub, username, options, field):
    hub.create_user(username)
    before = session_entries(hub)
    r = hub.spawn(username, options)
    assert r.status_code == 400, (r.status_code, r.text)
    message = r.json()["message"]
    assert field in message, message
    # nothing was launched
    assert hub.server(username) is None
    assert not hub.server_pids(username)
    assert session_entries(hub) == before


@pytest.mark.skipif(
    int(jupyterhub.__version__.split(".")[0]) < 6,
    reason="JupyterHub 5 itself answers 500 for a non-object body (a TraitError on "
    "Spawner.user_options before any spawner code runs) and leaves the server pending",
)
def test_rest_options_must_be_an_object(hub, username):
    hub.create_user(username)
    r = hub.api("POST", f"/users/{username}/server", data="[1, 2]", headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert hub.server(username) is None
