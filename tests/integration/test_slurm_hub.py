"""A real hub + proxy spawning real jupyterhub-singleuser servers as jobs of a real Slurm
cluster (tests/slurmlab: login node + GPU nodes behind it in network namespaces), through
the login node (``kind: slurm``): the GPU type honoured, Slurm's pending reason in the
progress messages, an impossible request refused at once with Slurm's message, stop =
scancel, a hub restart that keeps the server, and a time limit that ends the job and that
the hub notices.

The server runs on the compute node, as the lab's unprivileged account, listening on a unix
socket in a 0700 directory; the hub reaches it over SSH through the login node, and the
server reaches the hub API through a reverse forward on the node's loopback. Slurm time
limits are whole minutes (60-90 s here): that server is started when the module starts and
checked by the last test, so it overlaps the others.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slurmlab import available  # noqa: E402

pytestmark = [pytest.mark.hub, pytest.mark.skipif(available() is not None, reason=available() or "")]

SINGLEUSER = str(Path(sys.executable).parent / "jupyterhub-singleuser")
LIMITED_USER = "tina"


def slurm_backend(lab, **overrides) -> dict:
    conf = {
        "kind": "slurm",
        "display_name": "HPC cluster",
        "login_hosts": [{"name": "login", "address": lab.login.address}],
        "username": lab.user,
        "client_keys": [str(lab.ssh.client_key)],
        "known_hosts": str(lab.ssh.known_hosts),
        "partitions": ["gpu", "debug"],
        "gpu_types": {
            "a100": {"gres": "a100", "memory": 80, "feature": "a100_80g", "display_name": "A100 80 GB"},
            "t4": {"gres": "t4", "memory": 16, "feature": "t4_16g", "display_name": "T4 16 GB"},
        },
        "queue_wait": 120,
        "pending_interval": 0.5,
        "poll_interval": 2,
        "session_root": f"/tmp/gsl{os.getpid() % 100000}-{{account}}",
        "notebook_dir": "~",
        "connect_timeout": 5,
    }
    conf.update(overrides)
    return conf


def grid(lab) -> dict:
    return {
        "backends": {
            # real jupyterhub-singleuser servers run as root: the hub's venv lives under /root
            # (0700 here), which the lab's account cannot read
            "hpc": slurm_backend(lab, username="root"),
            # the lab's unprivileged account, running the tiny test server (the system python)
            "mine": slurm_backend(lab),
            # Slurm ends these jobs after a minute (the backend's time_limit, not a hub deadline)
            "limited": slurm_backend(lab, partitions=["debug"], time_limit=60),
        },
        "images": {
            "lab": {"display_name": "JupyterLab", "slurm": {"cmd": [SINGLEUSER]}},
            "tiny": {"display_name": "Test server", "slurm": {"cmd": ["python3", str(lab.bin / "host_sock_server.py")]}},
        },
        "gpu_memory_classes": [0, 16, 80],
        "max_gpus": 4,
    }


@pytest.fixture(scope="module")
def slurm_hub(slurm_lab, tmp_path_factory):
    from hubtools import Hub

    workdir = tmp_path_factory.mktemp("slurmhub")
    hub = Hub(grid(slurm_lab), workdir=workdir, poll_interval=5, start_timeout=None)
    try:
        hub.start()
        yield hub
    finally:
        hub.close()
        leftover = []
        for account in (slurm_lab.user, "root"):
            root = Path(grid(slurm_lab)["backends"]["hpc"]["session_root"].replace("{account}", account))
            leftover += sorted(p.name for p in root.iterdir()) if root.exists() else []
        slurm_lab.slurm("scancel", "-u", slurm_lab.user, check=False)
        slurm_lab.slurm("scancel", "-u", "root", check=False)
        for account in (slurm_lab.user, "root"):
            shutil.rmtree(grid(slurm_lab)["backends"]["hpc"]["session_root"].replace("{account}", account),
                          ignore_errors=True)
        assert leftover == [], f"session directories left behind: {leftover}"


@pytest.fixture(scope="module", autouse=True)
def time_limited_server(slurm_hub):
    """A server in a job with a 1-minute limit, spawned before the other tests run."""
    slurm_hub.spawn_ready(LIMITED_USER, {"backend": "limited", "image": "tiny", "gpus": 0})
    return job_of(slurm_hub, LIMITED_USER)


def state_of(hub, user: str, server: str = "") -> dict:
    r = hub.api("GET", f"/users/{user}")
    r.raise_for_status()
    return ((r.json().get("servers", {}).get(server) or {}).get("state") or {}).get("launch") or {}


def job_of(hub, user: str) -> int:
    return int(state_of(hub, user)["job_id"])


def squeue(lab, job: int, fmt: str) -> str:
    return lab.slurm("squeue", "-h", "-t", "all", "-j", str(job), "-o", fmt).stdout.strip()


def wait_squeue(lab, job: int, fmt: str, pattern: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        out = squeue(lab, job, fmt)
        if re.fullmatch(pattern, out) or time.monotonic() > deadline:
            assert re.fullmatch(pattern, out), f"job {job}: {out!r} !~ {pattern!r}"
            return out
        time.sleep(0.3)


class Progress:
    """The spawn's progress messages (the hub's event stream), read in a thread."""

    def __init__(self, hub, user: str):
        self.messages: list[str] = []
        self.events: list[dict] = []
        self._r = hub.api("GET", f"/users/{user}/server/progress", stream=True, timeout=180)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._r.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                event = json.loads(line[5:])
                self.events.append(event)
                self.messages.append(event.get("message", ""))

    def wait_for(self, pattern: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in list(self.messages):
                if re.search(pattern, m):
                    return m
            time.sleep(0.1)
        raise AssertionError(f"no progress message matching {pattern!r}: {self.messages}")

    def finish(self, timeout: float = 60) -> list[dict]:
        self._thread.join(timeout)
        self._r.close()
        return self.events


def server_process(lab, job: int) -> int:
    """The pid of the server process of ``job`` (the one listening on the job's socket)."""
    out = subprocess.run(["ps", "-eww", "-o", "pid=,args="], capture_output=True, text=True).stdout
    for line in out.splitlines():
        pid, _, args = line.strip().partition(" ")
        if f".{job}/jupyter.sock" in args and "--ServerApp.sock=" in args:
            return int(pid)
    raise AssertionError(f"no server process of job {job}:\n{out}")


@pytest.mark.jh5
def test_spawn_through_the_login_node_on_the_gpu_type_asked_for(slurm_hub, slurm_lab):
    hub, lab = slurm_hub, slurm_lab
    hub.create_user("alice")
    assert hub.spawn("alice", {"backend": "mine", "image": "tiny", "gpus": 1, "gpu_type": "a100"}).status_code in (201, 202)
    hub.wait_ready("alice", timeout=90)
    assert hub.server_status("alice").status_code == 200  # hub → proxy → relay → login → gpu1 → socket
    job = job_of(hub, "alice")
    assert squeue(lab, job, "%T|%N|%b|%P") == "RUNNING|gpu1|gres:gpu:a100:1|gpu"
    # the server is in the job: on gpu1 (its network namespace), as the account, its one card
    pid = server_process(lab, job)
    gpu1_netns = os.stat(f"/run/netns/{lab.compute['gpu1'].netns}").st_ino
    assert os.readlink(f"/proc/{pid}/ns/net") == f"net:[{gpu1_netns}]"
    assert Path(f"/proc/{pid}").stat().st_uid == lab.home().stat().st_uid != 0
    env = dict(v.split("=", 1) for v in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in v)
    assert env["CUDA_VISIBLE_DEVICES"] == "0" and env["SLURM_JOB_ID"] == str(job)
    token = env["JUPYTERHUB_API_TOKEN"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/hub/api", env["JUPYTERHUB_API_URL"])  # the node's loopback
    # the token is in no argv, not in the batch script Slurm keeps, in no file of the session
    # directory (0700; the env file was read and removed)
    state = state_of(hub, "alice")
    sdir = Path(state["session_dir"])
    assert sdir.stat().st_mode & 0o777 == 0o700 and sorted(p.name for p in sdir.iterdir()) == ["gpus.csv", "jupyter.sock", "server.log"]
    assert token not in (sdir / "gpus.csv").read_text() + (sdir / "server.log").read_text()
    batch = lab.run(f"scontrol write batch_script {job} -").stdout
    assert "host_sock_server.py" in batch and token not in batch and "JUPYTERHUB_API_TOKEN" not in batch
    cmdlines = subprocess.run(["ps", "-eww", "-o", "args="], capture_output=True, text=True).stdout
    assert token not in cmdlines
    assert token not in json.dumps(state) and token not in hub.log()
    assert state["gpus"][0]["name"] == "NVIDIA A100-SXM4-80GB"


def test_the_form_offers_the_gpu_types_and_the_clusters_free_gpus(slurm_hub, slurm_lab):
    """The spawn page: the backend's GPU types, and its capacity from sinfo (the background
    probe; the time-limited server of this module holds no GPU: all 4 cards are free)."""
    hub = slurm_hub
    form = hub.form_session("gina")
    try:
        deadline = time.monotonic() + 40
        while True:
            html = form.get_form().text
            if re.search(r'data-summary="\d+ of 4 GPUs free', html) or time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        form.close()
    assert re.search(r'data-summary="\d of 4 GPUs free, up to (80|16) GB"', html), html[:3000]
    for key, label in (("a100", "A100 80 GB"), ("t4", "T4 16 GB")):
        assert f'<option value="{key}" data-backend="hpc" data-label="{label}">' in html


def test_pending_reason_shown_then_the_server_starts(slurm_hub, slurm_lab):
    hub, lab = slurm_hub, slurm_lab
    blockers = [lab.sbatch("#!/bin/sh\nsleep 300\n", "--gres=gpu:t4:1", "--time=5") for _ in range(2)]
    try:
        for job in blockers:
            wait_squeue(lab, job, "%T", "RUNNING")
        hub.create_user("bob")
        # the tiny server: what is checked is the queue and the progress (a real JupyterLab
        # through the reverse tunnel: test_a_hub_restart_keeps_the_server)
        assert hub.spawn("bob", {"backend": "hpc", "image": "tiny", "gpus": 1, "gpu_type": "t4"}).status_code in (201, 202)
        progress = Progress(hub, "bob")
        shown = progress.wait_for(r"pending: Resources", timeout=30)
        # the backfill scheduler's estimate (the blockers' time limit) follows
        estimate = progress.wait_for(r"pending: Resources \(estimated start \d{4}-\d\d-\d\dT[\d:]+\)", timeout=30)
        assert hub.server("bob")["pending"] == "spawn"
        lab.slurm("scancel", str(blockers[0]))
        hub.wait_ready("bob", timeout=90)
        assert hub.server_status("bob").status_code == 200
        job = job_of(hub, "bob")
        assert squeue(lab, job, "%N|%b") == "gpu2|gres:gpu:t4:1"
        print(shown, "|", estimate)
        hub.stop_server("bob")
    finally:
        lab.slurm("scancel", *map(str, blockers), check=False)


def test_an_impossible_request_fails_fast_with_slurms_message(slurm_hub, slurm_lab):
    """sbatch refuses 3 T4s (a node has 2): the spawn fails at once with Slurm's words, as
    the answer to the spawn request itself (JupyterHub waits that long before answering)."""
    hub, lab = slurm_hub, slurm_lab
    hub.create_user("carol")
    t0 = time.monotonic()
    r = hub.spawn("carol", {"backend": "hpc", "image": "lab", "gpus": 3, "gpu_type": "t4"})
    took = time.monotonic() - t0
    assert r.status_code == 500, r.text
    assert r.json()["message"] == ("Could not start your server: Slurm refused the job: Batch job submission failed: "
                                   "Requested node configuration is not available")
    assert took < 10, took
    assert hub.server("carol") is None


def test_stop_cancels_the_job(slurm_hub, slurm_lab):
    hub, lab = slurm_hub, slurm_lab
    hub.spawn_ready("dave", {"backend": "mine", "image": "tiny", "gpus": 0})
    job = job_of(hub, "dave")
    pid = server_process(lab, job)
    sdir = Path(state_of(hub, "dave")["session_dir"])
    hub.stop_server("dave")
    assert squeue(lab, job, "%T") == "CANCELLED"
    deadline = time.monotonic() + 15
    while (Path(f"/proc/{pid}").exists() or sdir.exists()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists() and not sdir.exists()


def test_a_hub_restart_keeps_the_server(slurm_hub, slurm_lab):
    hub, lab = slurm_hub, slurm_lab
    hub.spawn_ready("erin", {"backend": "hpc", "image": "lab", "gpus": 1, "gpu_type": "t4"})
    job = job_of(hub, "erin")
    pid = server_process(lab, job)
    hub.restart_hub()
    deadline = time.monotonic() + 30
    while hub.server_status("erin", timeout=5).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert hub.server_status("erin").status_code == 200
    assert job_of(hub, "erin") == job and server_process(lab, job) == pid
    assert squeue(lab, job, "%T") == "RUNNING"
    hub.stop_server("erin")
    assert squeue(lab, job, "%T") == "CANCELLED"


def test_dropped_ssh_connections_heal(slurm_hub, slurm_lab):
    """Every SSH connection to the login node and to the job's node killed (their sshd
    sessions): the relay keeps its port and reaches the server again over new connections."""
    hub, lab = slurm_hub, slurm_lab
    hub.spawn_ready("fred", {"backend": "mine", "image": "tiny", "gpus": 0})
    url = hub.server("fred")["url"]
    node = state_of(hub, "fred")["node"]
    assert lab.ssh.drop_connections(lab.compute[node]) and lab.ssh.drop_connections(lab.login)
    deadline = time.monotonic() + 20
    status = None
    while time.monotonic() < deadline:
        try:
            status = hub.server_status("fred", timeout=5).status_code
        except Exception as e:  # the relay's channel while the connection is made again
            status = e
        if status == 200:
            break
        time.sleep(0.3)
    assert status == 200 and hub.server("fred")["url"] == url
    job = job_of(hub, "fred")
    # the stop right after: the login connection it finds dropped is made again, and the
    # job is cancelled (it once stayed running: scancel failed on the dead connection)
    lab.ssh.drop_connections(lab.login)
    hub.stop_server("fred")
    assert wait_squeue(lab, job, "%T", "CANCELLED", 10)


def test_a_time_limit_ends_the_job_and_the_hub_notices(slurm_hub, slurm_lab, time_limited_server):
    """Runs last: its server was spawned when the module started (see the docstring)."""
    hub, lab = slurm_hub, slurm_lab
    job = time_limited_server
    assert squeue(lab, job, "%l|%P") == "1:00|debug"
    hub.wait_stopped(LIMITED_USER, timeout=150)
    assert wait_squeue(lab, job, "%T|%r", r"TIMEOUT\|TimeLimit", 10)
    assert re.search(rf"job {job} of {lab.user} \(gpu\d\) ended: TIMEOUT: reached its time limit", hub.log())
