"""Hub-level lifecycle: restart with a running server, maximum run time, bad config."""

from __future__ import annotations

import re
import time

import pytest

from hubtools import procs

pytestmark = pytest.mark.hub


@pytest.mark.jh5
def test_hub_restart_keeps_server_reachable(make_hub, username):
    hub = make_hub()
    hub.spawn_ready(username, {"gpus": 1, "gpu_memory": 40})
    assert hub.server_status(username).status_code == 200
    pid = hub.server_pid(username)
    devices = procs.environ(pid)["CUDA_VISIBLE_DEVICES"]
    url = hub.server(username)["url"]
    hub.spawn_ready(username, {"gpus": 0}, server_name="named")  # a named server's URL too

    mark = hub.log_mark()
    hub.restart_hub()

    # the URL the spawner gives back is the one JupyterHub stored (with /user/NAME/[SERVER/]):
    # no "had invalid url … Updating" for each server at every restart
    restarted = hub.log_since(mark)
    assert "had invalid url" not in restarted, restarted[-3000:]
    assert hub.server(username)["ready"], hub.log()[-3000:]
    assert hub.server(username, "named")["ready"]
    assert hub.server_status(username, "named").status_code == 200
    hub.stop_server(username, "named")
    assert hub.server(username)["url"] == url
    r = hub.server_status(username)
    assert r.status_code == 200, (r.status_code, r.text[:300], hub.log()[-3000:])
    assert hub.server_pid(username) == pid, "the server was restarted instead of re-attached"
    # the restarted hub still knows the GPU is taken
    other = f"{username}b"
    hub.create_user(other)
    hub.spawn_ready(other, {"gpus": 1, "gpu_memory": 40})
    assert procs.environ(hub.server_pid(other))["CUDA_VISIBLE_DEVICES"] != devices
    # and it can stop the server it re-attached to
    hub.stop_server(username)
    hub.stop_server(other)
    assert not procs.alive(pid)
    assert not hub.leftover_pids()


@pytest.mark.jh5
def test_hub_restart_notices_server_that_died(make_hub, username):
    hub = make_hub()
    hub.spawn_ready(username, {"gpus": 1})
    pid = hub.server_pid(username)
    hub.stop_hub()
    procs.terminate(hub.server_pids(username))
    assert not procs.alive(pid)
    hub.start_hub()
    assert hub.server(username) is None, "a dead server must not be reported as running"
    # its GPU is free again: all four can be had
    users = [f"{username}g{i}" for i in range(2)]
    for u in users:
        hub.spawn_ready(u, {"gpus": 2})
    for u in users:
        hub.stop_server(u)


@pytest.mark.jh5
def test_max_runtime_stops_server_by_itself(hub, username):
    hub.spawn_ready(username, {"profile": "short"})
    pid = hub.server_pid(username)
    started = time.monotonic()
    assert hub.server_status(username).status_code == 200
    deadline = started + 45
    while hub.server(username) is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert hub.server(username) is None, "the server outlived its profile's max_runtime"
    elapsed = time.monotonic() - started
    assert elapsed < 30, elapsed
    assert not procs.alive(pid)


BAD_CONFIGS = [
    ({"backends": {"gpu": {"kind": "kube"}}}, "c.GridSpawner.backends['gpu'].kind"),
    ({"backends": {}}, "c.GridSpawner.backends"),
    ({"images": {"lab": {"display_name": "x"}}}, "c.GridSpawner.images['lab']"),
    ({"profiles": {"p": {"values": {"image": "nope"}}}}, "c.GridSpawner.profiles['p']['values']['image']"),
    ({"gpu_memory_classes": [16, "big"]}, "c.GridSpawner.gpu_memory_classes[1]"),
    ({"max_runtime": "forever"}, "c.GridSpawner.max_runtime"),
    (
        {"backends": {"local": {"kind": "local", "session_root": "relative/dir"}}},
        "c.GridSpawner.backends['local']['session_root']",
    ),
    (
        {"images": {"lab": {"local": {"cmd": "jupyterhub-singleuser"}}}},
        "c.GridSpawner.images['lab']['local']['cmd']",
    ),
    ({"default_quota": {"gpu_hours_per_month": "lots"}}, "c.GridSpawner.default_quota['gpu_hours_per_month']"),
    ({"idle_timeout_per_backend": {"cluster": "1h"}}, "c.GridSpawner.idle_timeout_per_backend['cluster']"),
    ({"prices": {"gpu_models": {"*A100*": -1}}}, "c.GridSpawner.prices['gpu_models']['*A100*']"),
]


@pytest.mark.parametrize("change,key", BAD_CONFIGS, ids=[k for _, k in BAD_CONFIGS])
def test_bad_config_stops_hub_naming_the_key(make_hub, tmp_path, change, key):
    from hubtools import default_grid_config

    grid = default_grid_config(tmp_path)
    grid.update(change)
    hub = make_hub(grid, start=False)
    hub.start(wait=False)
    status = hub.wait_exit(30)
    assert status != 0
    log = hub.log()
    message = log[log.index("gridspawner: invalid configuration: "):]
    assert f"{key}: " in message, log[-3000:]


@pytest.mark.jh5
def test_every_bad_setting_is_named_in_one_message(make_hub, tmp_path):
    """Three unrelated mistakes: the hub exits 1 once, and its message names each key (an
    admin fixes them all in one go instead of one per restart)."""
    from hubtools import default_grid_config

    grid = default_grid_config(tmp_path)
    grid["backends"]["local"]["session_root"] = "relative/dir"
    grid["images"]["minimal"]["local"]["cmd"] = "jupyterhub-singleuser"
    grid["max_runtime"] = "forever"
    hub = make_hub(grid, start=False)
    hub.start(wait=False)
    assert hub.wait_exit(30) == 1
    log = hub.log()
    assert log.count("gridspawner: invalid configuration: ") == 1, log[-3000:]
    message = log[log.index("gridspawner: invalid configuration: "):]
    assert "3 settings are wrong" in message
    for key in (
        "c.GridSpawner.backends['local']['session_root']",
        "c.GridSpawner.images['minimal']['local']['cmd']",
        "c.GridSpawner.max_runtime",
    ):
        assert re.search(r"\n\s+" + re.escape(key) + ": ", message), message[:3000]  # one a line


@pytest.mark.jh5
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_hub_shutdown_with_cleanup_exits(make_hub, username, sig):
    """With cleanup_servers (JupyterHub's default) a signal stops the servers and the hub
    exits: no gridspawner task (capacity refresh, relays) may keep the event loop alive."""
    import signal

    hub = make_hub(extra_config="c.JupyterHub.cleanup_servers = True")
    browser = hub.form_session(username)  # the form starts the background capacity refresh
    assert browser.get_form().status_code == 200
    hub.spawn_ready(username, {"gpus": 1})
    pid = hub.server_pid(username)
    browser.close()
    hub.process.send_signal(getattr(signal, sig))
    assert hub.wait_exit(20) == 0 or sig == "SIGINT"
    assert not procs.alive(pid), "cleanup_servers did not stop the server"
