"""Crash consistency (issue 16): a real hub killed with SIGKILL at each step of a launch and of
a stop, on the local backend, an SSH lab host and the Kubernetes emulator (pods run as local
processes), restarted each time. Afterwards nothing is left that the hub does not know: no
server process or pod, no GPU claim, no session directory or Secret; no server the hub knew
is lost (one started before the crashes keeps answering through them all, and so does one
whose stop never began); and each user's next spawn works.

The crashes come from `hubtools.crash` (the test's jupyterhub_config.py wraps backend
methods; gridspawner has no test hook). One hub serves all three backends and every case, so
the whole matrix costs one hub restart per step; `orphan_grace` is 2 s here (300 s by
default), so the orphans go within seconds. Every backend runs the tiny stand-in server
(tests/fixtures/host_sock_server.py): the checks are about processes, claims, sessions, pods
and Secrets, not JupyterLab. Slow (minutes), and not in CI's JupyterHub 5 selection (`jh5`:
hub restarts are covered there by test_hub_lifecycle); run on JupyterHub 5 by hand, only the
local backend's column runs, since what differs between JupyterHub versions (how a restarted
hub treats the servers it finds) is the same for all.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import jupyterhub
import pytest
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gridspawner.backends.kubernetes.names import USER_ANNOTATION  # noqa: E402
from hubtools import Hub, crash, procs  # noqa: E402
from k8s_emulator import EmulatorProcess  # noqa: E402
from sshhosts import SSHLab, available  # noqa: E402

pytestmark = [pytest.mark.hub, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
FAKE_SMI = str(REPO / "tests" / "fixtures" / "fake_nvidia_smi")
TINY_SERVER = str(REPO / "tests" / "fixtures" / "host_sock_server.py")
NS = "default"
NODES = [{"name": "cpu-1", "cpu": "16", "memory": "64Gi"}]
OPTIONS = {
    "local": {"backend": "local", "image": "tiny", "gpus": 1},
    "ssh": {"backend": "ssh", "image": "tiny", "gpus": 1},
    "kubernetes": {"backend": "cluster", "image": "tiny", "gpus": 0},
}


@pytest.fixture(scope="module")
def lab():
    if available() is not None:
        yield None
        return
    with SSHLab() as lab:
        lab.add_host("a")
        yield lab


@pytest.fixture(scope="module")
def cluster():
    with EmulatorProcess(NODES, run_pods=True) as emu:
        yield emu
        assert emu.validation_failures == []


@pytest.fixture(scope="module")
def crash_hub(lab, cluster, tmp_path_factory):
    from hubtools.hub import local_backend_config

    workdir = tmp_path_factory.mktemp("crashhub")
    backends = {
        "local": local_backend_config(workdir, kill_timeout=2, interrupt_timeout=2, term_timeout=1),
        "cluster": {"kind": "kubernetes", "namespace": NS, "kubeconfig": cluster.kubeconfig_path,
                    "termination_grace_seconds": 3},
    }
    if lab is not None:
        smi = ["env", "FAKE_NVIDIA_SMI_SEED=crash", f"FAKE_NVIDIA_SMI_GPUS={';'.join(['Tesla T4,15360'] * 4)}", FAKE_SMI]
        backends["ssh"] = {"kind": "ssh", **lab.backend_settings(
            [lab.host_entry("a", nvidia_smi=smi)], workdir, f"/tmp/gsc{os.getpid() % 10000}-{{account}}",
            interrupt_timeout=2, term_timeout=1, kill_timeout=2)}
    grid = {
        "backends": backends,
        "images": {
            # the tiny stand-in server everywhere (on Kubernetes it listens on the pod's IP, as
            # jupyterhub-singleuser would): what is checked is process, claim, session, pod and
            # Secret bookkeeping, and a full JupyterLab start per crash step cost ~3 s of CPU
            "tiny": {"local": {"cmd": [sys.executable, TINY_SERVER]}, "ssh": {"cmd": [sys.executable, TINY_SERVER]},
                     "kubernetes": {"image": "quay.io/jupyter/base-notebook:2025-01-01",
                                    "cmd": [sys.executable, TINY_SERVER]}},
        },
        "max_gpus": 1,
        "orphan_grace": 2,
        "reconcile_interval": 1,
        "capacity_refresh_interval": 2,
    }
    hub = Hub(grid, workdir=workdir, extra_config=crash.CONFIG, poll_interval=5)
    try:
        hub.start()
        yield hub
    finally:
        crash.disarm(hub)
        if hub.process is not None and hub.process.poll() is not None:
            hub.start_hub()  # a failed case may have left it dead: close() stops servers through it
        hub.close()
        if "ssh" in backends:
            import shutil

            shutil.rmtree(backends["ssh"]["session_root"].replace("{account}", "root"), ignore_errors=True)


# --------------------------------------------------------------------------- what is where


def session_root(hub, kind: str) -> Path:
    return Path(hub.grid["backends"][kind]["session_root"].replace("{account}", "root"))


def host_leftovers(hub, kind: str, users: list[str]) -> dict[str, list]:
    """What runs or lies on the host for ``users``: server processes (by user), GPU claims
    (the user each names) and session directories."""
    ledger = Path(hub.grid["backends"][kind]["ledger_dir"])
    root = session_root(hub, kind)
    running = sorted(u for u in users for _ in procs.matching(env_equals={"JUPYTERHUB_USER": u}))
    claims = sorted(line[5:] for p in (ledger.iterdir() if ledger.exists() else ()) if p.is_file()
                    for line in p.read_text().splitlines() if line.startswith("user="))
    sessions = sorted(p.name for p in root.iterdir()) if root.exists() else []
    return {"processes": running, "claims": claims, "sessions": sessions}


def pod_leftovers(cluster, users: list[str]) -> dict[str, list]:
    found = {"pods": [], "secrets": []}
    for kind in found:
        for o in cluster.list(kind, NS):
            user = (o["metadata"].get("annotations") or {}).get(USER_ANNOTATION)
            if user in users:
                found[kind].append(user)
    found["processes"] = sorted(u for u in users for _ in procs.matching(env_equals={"JUPYTERHUB_USER": u}))
    return {k: sorted(v) for k, v in found.items()}


def leftovers(hub, cluster, kind: str, users: list[str]) -> dict[str, list]:
    return pod_leftovers(cluster, users) if kind == "kubernetes" else host_leftovers(hub, kind, users)


def expected(kind: str, running: list[str]) -> dict[str, list]:
    """What the servers in ``running`` (one each, one GPU on hosts) leave while they run."""
    if kind == "kubernetes":
        return {"pods": sorted(running), "secrets": sorted(running), "processes": sorted(running)}
    return {"processes": sorted(running), "claims": sorted(running), "sessions": None}


def matches(found: dict, want: dict) -> bool:
    return all(want[k] is None or found[k] == want[k] for k in want)


def reclaimed_count(hub, backend: str) -> float:
    """gridspawner_orphans_reclaimed_total of ``backend`` since the hub (re)started."""
    r = hub.session.get(f"{hub.url}/hub/metrics", timeout=30)
    assert r.status_code == 200, r.text[:300]
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            if sample.name == "gridspawner_orphans_reclaimed_total" and sample.labels.get("backend") == backend:
                return sample.value
    return 0.0


def wait_answering(hub, user: str, within: float = 30) -> None:
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        try:
            r = hub.server_status(user, timeout=5)
            if r.status_code == 200:
                return
            last = r.status_code
        except Exception as e:  # noqa: BLE001 - the route is being rebuilt after the restart
            last = e
        time.sleep(0.3)
    raise AssertionError(f"{user}'s server does not answer after the restart: {last!r}\n{hub.log()[-3000:]}")


# --------------------------------------------------------------------------- the matrix


@pytest.mark.parametrize("kind", ["local", "ssh", "kubernetes"])
def test_a_hub_killed_at_any_step_of_a_launch_or_stop_leaks_nothing(crash_hub, lab, cluster, kind, username):
    if kind == "ssh" and lab is None:
        pytest.skip(available() or "no SSH lab")
    if kind != "local" and jupyterhub.version_info < (6,):
        pytest.skip("on JupyterHub 5 the local backend's column covers what differs between versions")
    hub, options = crash_hub, OPTIONS[kind]
    keeper = f"{username}k"
    users = [keeper]
    # a server the hub knows (its state saved): a crash must not lose it
    hub.spawn_ready(keeper, options)
    hub.process.send_signal(signal.SIGKILL)
    hub.process.wait(30)
    hub.start_hub()
    wait_answering(hub, keeper)

    mark = hub.log_mark()
    steps = crash.STEPS[kind]
    for i, step in enumerate(steps):
        user = f"{username}{i}"
        users.append(user)
        hub.create_user(user)
        if step.startswith("stop_"):
            hub.spawn_ready(user, options)
            crash.kill_at(hub, f"{kind}:{step}", lambda: hub.api("DELETE", f"/users/{user}/server", timeout=60))
        else:
            crash.kill_at(hub, f"{kind}:{step}", lambda: hub.spawn(user, options, timeout=60))
        hub.start_hub()
        if step == "before_return":  # a running server the hub never saved: reclaimed, and counted
            backend = options["backend"]
            deadline = time.monotonic() + 30
            while reclaimed_count(hub, backend) < 1:
                assert time.monotonic() < deadline, f"no orphan reclaimed on {backend}:\n{hub.log()[-3000:]}"
                time.sleep(0.5)
    by_step = dict(zip(steps, users[1:]))

    # the hub still knows the server started before the crashes, and the one whose stop never
    # began; after orphan_grace everything else of these users is gone
    still_known = sorted([keeper, by_step["stop_begin"]])
    deadline = time.monotonic() + 60
    while not matches(found := leftovers(hub, cluster, kind, users), expected(kind, still_known)):
        assert time.monotonic() < deadline, f"left behind: {found}\n{hub.log_since(mark)[-5000:]}"
        time.sleep(0.5)
    listed = sorted(u for u in users if hub.server(u) is not None)
    assert listed == still_known, listed
    for user in still_known:
        wait_answering(hub, user)
    if kind != "kubernetes":
        assert len(found["sessions"]) == 2, found
    log = hub.log_since(mark)
    reclaimed = "reclaimed an orphaned server" if kind == "kubernetes" else "reclaimed the orphaned session"
    assert reclaimed in log, log[-5000:]
    if kind != "kubernetes":  # JupyterHub polled the lost server at start-up; the backend heard of it
        assert f"{by_step['before_return']}: the launch of server '' was cut short" in log, log[-5000:]

    # each user's next spawn works; the server whose stop was cut short stops now
    hub.stop_server(by_step["stop_begin"])
    for step, user in by_step.items():
        if step == "stop_begin":
            continue
        hub.spawn_ready(user, options)
        assert hub.server_status(user).status_code == 200
        hub.stop_server(user)
    hub.stop_server(keeper)
    nothing = {k: [] for k in expected(kind, [])}
    deadline = time.monotonic() + 30
    while not matches(found := leftovers(hub, cluster, kind, users), nothing) or (
            kind != "kubernetes" and found["sessions"]):
        assert time.monotonic() < deadline, f"left behind after the last stop: {found}"
        time.sleep(0.3)
