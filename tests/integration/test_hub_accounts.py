"""A real hub (JupyterHub + configurable-http-proxy) whose local backend runs each user's server
as that user's own Unix account (the default as root; the harness's accounts are made by
``create_accounts`` and removed when the hub closes), with CPU / memory limits in cgroups."""

from __future__ import annotations

import os
import pwd
import time
from pathlib import Path

import pytest
from sshhosts.accounts import run_as

from gridspawner.backends.host import confine
from hubtools import procs
from hubtools.hub import accounts_prefix

pytestmark = [pytest.mark.hub, pytest.mark.skipif(os.geteuid() != 0, reason="per-user accounts need root")]


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(pid)


def test_two_users_servers_run_as_their_accounts_with_limits(make_hub, username):
    hub = make_hub(extra_config="c.GridSpawner.cpu_choices = [1, 2]\nc.GridSpawner.memory_choices = [2, 4]")
    other = f"{username}b"
    hub.create_user(other)
    hub.spawn_ready(username, {"gpus": 1, "cpu": 1, "memory": 2})
    hub.spawn_ready(other, {"gpus": 1})
    prefix = accounts_prefix(hub.workdir)
    mine, theirs = pwd.getpwnam(prefix + username), pwd.getpwnam(prefix + other)
    pid, other_pid = hub.server_pid(username), hub.server_pid(other)
    assert (uid_of(pid), uid_of(other_pid)) == (mine.pw_uid, theirs.pw_uid)
    assert "--allow-root" not in Path(f"/proc/{pid}/cmdline").read_text()
    assert procs.environ(pid)["HOME"] == mine.pw_dir
    assert procs.environ(pid)["CUDA_VISIBLE_DEVICES"] != procs.environ(other_pid)["CUDA_VISIBLE_DEVICES"]
    assert "each server runs as its user's own account" in hub.log()

    # a notebook written through the proxy is the user's own file, private to them
    token = hub.api("POST", f"/users/{username}/tokens", json={"scopes": [f"access:servers!user={username}"]}).json()["token"]
    r = hub.session.put(f"{hub.url}/user/{username}/api/contents/secret.txt", headers={"Authorization": f"token {token}"},
                        json={"type": "file", "format": "text", "content": "only mine"})
    assert r.status_code in (200, 201), r.text[:300]
    notebooks = [Path(p) for p in Path(mine.pw_dir).rglob("secret.txt")]
    assert len(notebooks) == 1 and notebooks[0].stat().st_uid == mine.pw_uid
    assert run_as(theirs.pw_name, "cat", str(notebooks[0])).returncode != 0
    assert run_as(theirs.pw_name, "kill", "-s", "KILL", str(pid)).returncode != 0
    sdir = next(p for p in hub.session_root.iterdir() if p.stat().st_uid == mine.pw_uid)
    assert run_as(theirs.pw_name, "ls", str(sdir)).returncode != 0

    # the server's cgroup holds it to one CPU and 2 GB
    cg = [d for d in Path(confine.CGROUP_BASE).glob(f"*/{confine.CGROUP_PARENT}/{confine.cgroup_name(str(sdir))}")] + \
        [d for d in Path(confine.CGROUP_BASE).glob(f"{confine.CGROUP_PARENT}/{confine.cgroup_name(str(sdir))}")]
    assert cg and any(str(pid) in (d / "cgroup.procs").read_text().split() for d in cg)

    # hub restart: re-attached, still its account's; then stop leaves nothing (no cgroup either)
    hub.restart_hub()
    assert hub.server_status(username).status_code == 200
    assert hub.server_pid(username) == pid
    hub.stop_server(username)
    hub.stop_server(other)
    assert not procs.alive(pid) and not procs.alive(other_pid)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(d.exists() for d in cg):
        time.sleep(0.2)
    assert not any(d.exists() for d in cg)
    assert not hub.leftover_pids()


def test_the_hub_warns_when_servers_could_read_its_own_files(tmp_path_factory):
    """The hub's database and cookie secret in a directory every account can enter: the hub
    says so at start-up (servers run as other accounts); in a private one it says nothing."""
    import shutil
    import tempfile

    from hubtools import Hub

    for private in (False, True):
        workdir = Path(tempfile.mkdtemp(prefix="gshubfiles-"))
        os.chmod(workdir, 0o700 if private else 0o755)
        hub = Hub(workdir=workdir)
        try:
            hub.start()
            deadline = time.monotonic() + 20  # (the check waits for the hub to make its database)
            while time.monotonic() < deadline and "gridspawner: configuration is valid" not in hub.log():
                time.sleep(0.2)
            time.sleep(1)
            warned = "the hub's own files can be read by other accounts" in hub.log()
            assert warned != private, hub.log()[-2000:]
            if not private:
                assert f"{workdir}/jupyterhub.sqlite (mode 644)" in hub.log()
        finally:
            hub.close()
            shutil.rmtree(workdir, ignore_errors=True)
