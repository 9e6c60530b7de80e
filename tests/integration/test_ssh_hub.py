"""A real hub + proxy spawning real jupyterhub-singleuser servers on sshd hosts in network
namespaces (``kind: ssh``): REST and form spawns, GPU placement across hosts (one host
behind a jump host), the hub API reached through the reverse tunnel (the single-user server
authenticates every request with the hub), a dropped SSH connection, and a hub restart.

The hub listens on 127.0.0.1 of the root namespace; the hosts cannot reach it except through
the tunnel gridspawner opens over the SSH connection.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sshhosts import SSHLab, available  # noqa: E402

pytestmark = [pytest.mark.hub, pytest.mark.skipif(available() is not None, reason=available() or "")]

REPO = Path(__file__).resolve().parents[2]
FAKE_SMI = str(REPO / "tests" / "fixtures" / "fake_nvidia_smi")
SINGLEUSER = str(Path(sys.executable).parent / "jupyterhub-singleuser")
TINY_SERVER = str(REPO / "tests" / "fixtures" / "host_sock_server.py")
FOUR_T4 = ";".join(["Tesla T4,15360"] * 4)
INVENTORY = {
    "a": "Tesla T4,15360;NVIDIA A10,23028",
    "b": "NVIDIA A100-PCIE-40GB,40960",
    "c": "NVIDIA H100 80GB HBM3,81559",
}


@pytest.fixture(scope="module")
def lab():
    with SSHLab() as lab:
        for name in ("a", "b", "gate"):
            lab.add_host(name)
        lab.add_host("c", behind="gate")
        yield lab


def ssh_grid(lab: SSHLab, workdir: Path) -> dict:
    hosts = []
    for name in ("a", "b", "c"):
        h = lab.hosts[name]
        entry = {
            "name": name,
            "address": h.address,
            "nvidia_smi": ["env", f"FAKE_NVIDIA_SMI_SEED={name}", f"FAKE_NVIDIA_SMI_GPUS={INVENTORY[name]}", FAKE_SMI],
        }
        if h.gateway is not None:
            entry["jump"] = {"address": h.gateway.address}
        hosts.append(entry)
    four = [
        {"name": n, "address": lab.hosts[n].address,
         "nvidia_smi": ["env", f"FAKE_NVIDIA_SMI_SEED={n}4", f"FAKE_NVIDIA_SMI_GPUS={FOUR_T4}", FAKE_SMI]}
        for n in ("a", "b")
    ]
    return {
        "backends": {
            "four": {
                "kind": "ssh",
                "hosts": four,
                "username": "root",
                "client_keys": [str(lab.client_key)],
                "known_hosts": str(lab.known_hosts),
                "session_root": f"/tmp/gsh{os.getpid() % 100000}-{{account}}",
                "ledger_dir": str(workdir / "ledger4"),
                "notebook_dir": str(workdir / "home" / "{username}"),
                "interrupt_timeout": 2,
            },
            "gpu": {
                "kind": "ssh",
                "display_name": "GPU hosts",
                "hosts": hosts,
                "username": "root",
                "client_keys": [str(lab.client_key)],
                "known_hosts": str(lab.known_hosts),
                "session_root": f"/tmp/gsh{os.getpid() % 100000}-{{account}}",
                "ledger_dir": str(workdir / "ledger"),
                "notebook_dir": str(workdir / "home" / "{username}"),
                "connect_timeout": 5,
                "interrupt_timeout": 5,
            }
        },
        "images": {
            "lab": {"display_name": "JupyterLab", "ssh": {"cmd": [SINGLEUSER]}},
            # a tiny HTTP server on the socket: many of them fit on 2 cores at once
            "tiny": {"display_name": "Test server", "ssh": {"cmd": [sys.executable, TINY_SERVER]}},
        },
        "gpu_memory_classes": [0, 16, 24, 40, 80],
        "max_gpus": 2,
    }


@pytest.fixture(scope="module")
def ssh_hub(lab, tmp_path_factory):
    from hubtools import Hub

    workdir = tmp_path_factory.mktemp("sshhub")
    hub = Hub(ssh_grid(lab, workdir), workdir=workdir, poll_interval=5)
    try:
        hub.start()
        yield hub
    finally:
        hub.close()
        root = Path(ssh_grid(lab, workdir)["backends"]["gpu"]["session_root"].replace("{account}", "root"))
        leftover = sorted(p.name for p in root.iterdir()) if root.exists() else []
        import shutil

        shutil.rmtree(root, ignore_errors=True)
        assert leftover == [], f"session directories left behind: {leftover}"


def ledger(hub, backend: str = "gpu") -> dict[str, str]:
    d = Path(hub.grid["backends"][backend]["ledger_dir"])
    return {p.name: p.read_text() for p in d.iterdir() if not p.name.startswith(".")} if d.exists() else {}


def wait_status(hub, user: str, within: float) -> float:
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < within:
        try:
            r = hub.server_status(user, timeout=5)
            if r.status_code == 200:
                return time.monotonic() - t0
            last = r.status_code
        except Exception as e:  # connection errors while the tunnel is rebuilt
            last = e
        time.sleep(0.3)
    raise AssertionError(f"/user/{user}/api/status not 200 within {within} s: {last!r}")


def server_host(hub, lab: SSHLab, user: str) -> str:
    pid = hub_server_pid(user)
    for name, h in lab.hosts.items():
        if pid in h.pids():
            return name
    raise AssertionError(f"server of {user} (pid {pid}) is in no lab namespace")


def hub_server_pid(user: str) -> int:
    from hubtools import procs

    found = [p for p in procs.matching(env_equals={"JUPYTERHUB_USER": user}) if "singleuser" in " ".join(procs.cmdline(p))]
    assert found, f"no server process for {user}"
    return found[0]


@pytest.mark.jh5
def test_rest_and_form_spawns_place_by_vram_and_reach_the_hub_through_the_tunnel(ssh_hub, lab, username):
    hub = ssh_hub
    users = {f"{username}x": (1, 80, "c"), f"{username}y": (1, 24, "a")}
    try:
        for user, (gpus, gb, _) in users.items():
            hub.create_user(user)
            r = hub.spawn(user, {"backend": "gpu", "image": "lab", "gpus": gpus, "gpu_memory": gb})
            assert r.status_code in (201, 202), r.text
        for user, (_, _, host) in users.items():
            hub.wait_ready(user)
            # /api/status makes the server ask the hub about the token: only works through the tunnel
            r = hub.server_status(user)
            assert r.status_code == 200, r.text
            assert server_host(hub, lab, user) == host
            env = _environ(hub_server_pid(user))
            assert env["JUPYTERHUB_API_URL"].startswith("http://127.0.0.1:")
            assert env["JUPYTERHUB_API_URL"] != hub.hub_api_url
        # the form: 1 GPU with at least 40 GB -> b's A100-40 (the smallest card that fits)
        form_user = f"{username}f"
        browser = hub.form_session(form_user)
        try:
            r = browser.post_form({"backend": "gpu", "image": "lab", "gpus": "1", "gpu_memory": "40"})
            assert r.status_code == 302, (r.status_code, r.text[:800])
        finally:
            browser.close()
        hub.wait_ready(form_user)
        assert hub.server_status(form_user).status_code == 200
        assert server_host(hub, lab, form_user) == "b"
        assert len(ledger(hub)) == 3
        hub.stop_server(form_user)
        # no capacity: a second 80 GB GPU does not exist
        other = f"{username}z"
        hub.create_user(other)
        r = hub.spawn(other, {"backend": "gpu", "image": "lab", "gpus": 1, "gpu_memory": 80})
        if r.status_code in (201, 202):
            deadline = time.monotonic() + 30
            while hub.server(other) is not None and time.monotonic() < deadline:
                time.sleep(0.3)
            assert hub.server(other) is None
            assert "No capacity" in hub.log()
        else:
            assert r.status_code in (500, 503) and "capacity" in r.text.lower(), r.text
    finally:
        for user in users:
            hub.stop_server(user)
    assert ledger(hub) == {}


def _environ(pid: int) -> dict[str, str]:
    from hubtools import procs

    return procs.environ(pid)


def test_dropped_connection_and_hub_restart_keep_servers_reachable(ssh_hub, lab, username):
    hub = ssh_hub
    ua, uc = f"{username}a", f"{username}c"
    try:
        hub.spawn_ready(ua, {"backend": "gpu", "image": "lab", "gpus": 1, "gpu_memory": 16})
        hub.spawn_ready(uc, {"backend": "gpu", "image": "lab", "gpus": 1, "gpu_memory": 80})
        assert (server_host(hub, lab, ua), server_host(hub, lab, uc)) == ("a", "c")
        url_a = hub.server(ua)["url"]
        pid_a = hub_server_pid(ua)
        # kill the SSH connection to a (its sshd session processes)
        assert lab.drop_connections(lab.hosts["a"])
        took = wait_status(hub, ua, within=15)
        print(f"reachable again {took:.2f} s after the SSH connection to a dropped")
        assert hub_server_pid(ua) == pid_a and hub.server(ua)["url"] == url_a
        # restart the hub: both servers are restored (relays on the same ports, tunnels again)
        mark = hub.log_mark()
        hub.restart_hub()
        assert "had invalid url" not in hub.log_since(mark)  # get_url() is the stored server URL
        for user in (ua, uc):
            wait_status(hub, user, within=30)
        assert hub_server_pid(ua) == pid_a
    finally:
        for user in (ua, uc):
            hub.stop_server(user)
    assert ledger(hub) == {}


def test_ten_concurrent_rest_spawns_on_two_hosts_with_four_gpus(ssh_hub, username):
    """10 users ask for 1 GPU each at the same moment; 2 hosts have 4 GPUs each: 8 start,
    no GPU is handed out twice (the hosts' ledgers say so), 2 get a clear "no capacity"."""
    from concurrent.futures import ThreadPoolExecutor

    hub = ssh_hub
    users = [f"{username}n{i}" for i in range(10)]
    for u in users:
        hub.create_user(u)
    mark = hub.log_mark()
    options = {"backend": "four", "image": "tiny", "gpus": 1}
    try:
        with ThreadPoolExecutor(10) as pool:
            responses = list(pool.map(lambda u: hub.spawn(u, options), users))
        ready, failed = [], []
        deadline = time.monotonic() + 90
        pending = set(users)
        while pending and time.monotonic() < deadline:
            for u, r in zip(users, responses):
                if u not in pending:
                    continue
                if r.status_code not in (201, 202):
                    failed.append((u, r.text))
                    pending.discard(u)
                    continue
                server = hub.server(u)
                if server is None:
                    failed.append((u, "stopped"))
                    pending.discard(u)
                elif server.get("ready"):
                    ready.append(u)
                    pending.discard(u)
            time.sleep(0.2)
        assert not pending, f"still pending: {pending}"
        assert len(ready) == 8 and len(failed) == 2, (ready, failed)
        log = hub.log_since(mark)
        for u, text in failed:
            assert "No capacity" in text or "No capacity" in log, (u, text)
        assert log.count("1 GPU requested, 0 free on") >= 2
        for u in ready:
            assert hub.server_status(u).status_code == 200
        claims = [line for text in ledger(hub, "four").values() for line in text.splitlines() if line.startswith("uuid=")]
        assert len(claims) == 8 and len(set(claims)) == 8
    finally:
        with ThreadPoolExecutor(10) as pool:
            list(pool.map(lambda u: hub.stop_server(u), users))
    assert ledger(hub, "four") == {}
