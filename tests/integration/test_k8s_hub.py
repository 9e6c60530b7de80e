"""The Kubernetes backend behind a real hub and proxy, with the API emulator running each
pod's container as a local process (tests/k8s_emulator, run mode):

- a server that ends by itself — the user's File → Shut Down (POST /user/NAME/api/shutdown),
  a killed container process (OOM kill), a kubelet eviction (the Failed pod stays on a real
  cluster) — leaves no pod and no Secret, and the hub notices at its next poll;
- the image's entrypoint stays: a Jupyter Docker Stacks image starts through its tini +
  start.sh (a stand-in script here), which runs the start hooks and then the server;
- the backend's own log lines reach the hub log, INFO included, in the hub's format;
- a MIG slice smaller than the VRAM asked for is a 400 naming the field, and nothing is made;
- a planned stop (an idle warning) reaches JupyterLab's stops file: the hub patches the pod's
  stops annotation, its downwardAPI volume projects it into the file the gridspawner-lab
  extension serves; Jupyter activity withdraws the plan and empties it.
"""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import datetime, timezone

import pytest

from gridspawner.backends.kubernetes.objects import STOPS_ANNOTATION, server_names
from k8s_emulator import EmulatorProcess

pytestmark = pytest.mark.hub

NS = "default"
STACKS_IMAGE = "quay.io/jupyter/base-notebook:2025-01-01"
GPU_TAINT = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
NODES = [
    {"name": "cpu-1", "cpu": "16", "memory": "64Gi"},
    {"name": "gpu-a10", "cpu": "16", "memory": "64Gi", "gpus": 2, "gpu_product": "NVIDIA-A10", "gpu_memory": 23028, "taints": GPU_TAINT},
]
#: stands in for the image's ENTRYPOINT (tini -g -- start.sh): start hooks, then exec "$@"
START_SH = """#!/bin/sh
echo "start.sh: running the start hooks for $JUPYTERHUB_USER"
export GRIDSPAWNER_TEST_START_HOOK=ran
exec "$@"
"""
#: idle servers on this backend are stopped after IDLE s and warned WARN s before: IDLE - WARN
#: s after their last Jupyter activity (far longer than any other test here keeps a server)
IDLE, WARN = 300, 292
STOPS_FILE = "/etc/gridspawner/stops.json"
#: the hub's log format: [I 2025-01-01 12:00:00.123 gridspawner.kubernetes.cluster server_cleanup:87] …
HUB_LINE = r"^\[I \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} gridspawner\.kubernetes\.cluster \w+:\d+\] "


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    start_sh = tmp_path_factory.mktemp("image") / "start.sh"
    start_sh.write_text(START_SH)
    start_sh.chmod(0o755)
    options = json.dumps({"image_entrypoints": {STACKS_IMAGE: [str(start_sh)]}})
    with EmulatorProcess(NODES, run_pods=True, extra_args=["--options", options]) as emu:
        yield emu
        assert emu.validation_failures == []


@pytest.fixture(scope="module")
def hub(cluster, tmp_path_factory):
    from hubtools import Hub

    grid = {
        "backends": {
            "cluster": {
                "kind": "kubernetes", "namespace": NS, "kubeconfig": cluster.kubeconfig_path,
                "gpu_types": {"mig-small": {"mig": "1g.10gb"}},
            },
        },
        "images": {
            "stacks": {"kubernetes": {"image": STACKS_IMAGE, "cmd": [sys.executable, "-m", "jupyterhub.singleuser", "--allow-root"]}},
        },
        "gpu_memory_classes": [0, 10, 24],
        "idle_timeout_per_backend": {"cluster": IDLE},
        "stop_warnings": [WARN],
        "quota_check_interval": 1,
    }
    h = Hub(grid, workdir=tmp_path_factory.mktemp("hub"), poll_interval=1)
    try:
        h.start()
        yield h
    finally:
        h.close()
        assert not h.leftover_pids()


def leftovers(emu) -> list[str]:
    return [f"{kind[:-1]}/{o['metadata']['name']}" for kind in ("pods", "secrets") for o in emu.list(kind, NS)]


def spawn(hub, emu, username) -> dict:
    hub.spawn_ready(username, {"backend": "cluster", "image": "stacks", "gpus": 1})
    assert hub.server_status(username).status_code == 200
    return emu.get("pods", NS, server_names(username, "").pod)


def wait_hub_noticed(hub, username, timeout=30) -> None:
    deadline = time.monotonic() + timeout
    while hub.server(username) is not None:
        assert time.monotonic() < deadline, f"the hub still lists {username}'s server:\n{hub.log()[-3000:]}"
        time.sleep(0.2)


@pytest.mark.parametrize("how", ["api-shutdown", "killed", "evicted"])
def test_a_server_that_ends_by_itself_leaves_nothing(hub, cluster, username, how):
    mark = hub.log_mark()
    pod = spawn(hub, cluster, username)
    name = pod["metadata"]["name"]
    assert leftovers(cluster) == [f"pod/{name}", f"secret/{name}-secret"]
    if how == "api-shutdown":  # the user's File → Shut Down in JupyterLab
        r = hub.session.post(f"{hub.url}/user/{username}/api/shutdown", timeout=30)
        assert r.status_code in (200, 202, 204), r.text
    elif how == "killed":  # e.g. the kernel's OOM killer
        cluster.exit_container(NS, name)
    else:  # node-pressure eviction: the Failed pod object stays on a real cluster
        cluster.evict_pod(NS, name)
    cluster.wait_for(lambda: leftovers(cluster) == [], timeout=30)
    wait_hub_noticed(hub, username)
    log = hub.log_since(mark)
    # the backend's INFO line, in the hub's own format
    assert re.search(HUB_LINE + re.escape(f"removed pod {name} and Secrets {name}-secret: the server ended ("), log, re.M), log[-3000:]
    # the next spawn of the same server works
    again = spawn(hub, cluster, username)
    assert again["metadata"]["uid"] != pod["metadata"]["uid"]
    hub.stop_server(username)
    cluster.wait_for(lambda: leftovers(cluster) == [], timeout=30)


def test_the_image_entrypoint_runs_the_server(hub, cluster, username):
    pod = spawn(hub, cluster, username)
    container = pod["spec"]["containers"][0]
    assert "command" not in container
    assert container["args"][:3] == [sys.executable, "-m", "jupyterhub.singleuser"]
    log = cluster.pod_log(NS, pod["metadata"]["name"])
    assert f"start.sh: running the start hooks for {username}" in log, log
    hub.stop_server(username)
    cluster.wait_for(lambda: leftovers(cluster) == [], timeout=30)


def test_a_mig_slice_smaller_than_the_vram_asked_is_a_field_error(hub, cluster, username):
    hub.create_user(username)
    r = hub.spawn(username, {"backend": "cluster", "image": "stacks", "gpus": 1, "gpu_type": "mig-small", "gpu_memory": 24})
    assert r.status_code == 400, r.text
    assert "gpu_memory" in r.json()["message"] and "has 10 GB per GPU" in r.json()["message"]
    assert leftovers(cluster) == []
    assert hub.server(username) is None


def test_a_planned_stop_reaches_the_stops_file_in_the_pod_and_is_withdrawn(hub, cluster, username):
    hub.spawn_ready(username, {"backend": "cluster", "image": "stacks", "gpus": 0})
    name = server_names(username, "").pod
    pod = cluster.get("pods", NS, name)
    # the server is told where the file is; the pod starts with no stops
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["GRIDSPAWNER_STOPS_FILE"] == STOPS_FILE
    assert json.loads(pod["metadata"]["annotations"][STOPS_ANNOTATION]) == {"stops": []}

    def stops_in_file():
        text = cluster.pod_file(NS, name, STOPS_FILE)
        return json.loads(text)["stops"] if text else None

    # IDLE - WARN s after its start, the idle stop is planned: the hub patches the annotation,
    # the kubelet projects it into the file
    [entry] = cluster.wait_for(stops_in_file, timeout=IDLE - WARN + 30, interval=0.1)
    assert entry["reason"] == "idle" and "idle" in entry["message"], entry
    assert time.time() < entry["at"] <= time.time() + WARN + 5
    assert json.loads(cluster.get("pods", NS, name)["metadata"]["annotations"][STOPS_ANNOTATION]) == {"stops": [entry]}
    # JupyterLab's extension reads that file through the proxy (the server's own endpoint)
    r = hub.session.get(f"{hub.url}/user/{username}/gridspawner/stops", timeout=30)
    assert r.status_code == 200, (r.status_code, r.text[:500])
    assert [s for s in r.json()["stops"] if s["reason"] == "idle"] == [entry], r.json()

    # Jupyter activity (what the single-user server reports to the hub) withdraws the plan
    now = datetime.now(timezone.utc).isoformat()
    r = hub.api("POST", f"/users/{username}/activity", json={"last_activity": now, "servers": {"": {"last_activity": now}}})
    assert r.status_code == 200, (r.status_code, r.text)
    cluster.wait_for(lambda: stops_in_file() == [], timeout=IDLE - WARN - 2, interval=0.1)
    hub.stop_server(username)
    cluster.wait_for(lambda: leftovers(cluster) == [], timeout=30)
