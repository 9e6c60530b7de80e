"""What a server learns about itself on the other backend kinds, through a real hub and proxy:

- ``ssh``: a real jupyterhub-singleuser on an sshd host in a network namespace finds the
  host's name and its GPU's model and memory in its environment, and gridspawner-lab's
  endpoint (through the proxy and the SSH tunnel) follows the stops file in the session
  directory on that host;
- ``kubernetes`` (the API emulator running the pod's container as a process): the node the
  scheduler chose reaches the server through the Downward API, the GPU type's product
  names its GPUs.

The local backend's case, in detail, is test_server_env_hub.py.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hubtools import procs  # noqa: E402
from sshhosts import SSHLab, available  # noqa: E402

pytestmark = pytest.mark.hub

REPO = Path(__file__).resolve().parents[2]
FAKE_SMI = str(REPO / "tests" / "fixtures" / "fake_nvidia_smi")
SINGLEUSER = str(Path(sys.executable).parent / "jupyterhub-singleuser")


def server_pid(user: str) -> int:
    found = [p for p in procs.matching(env_equals={"JUPYTERHUB_USER": user}) if "singleuser" in " ".join(procs.cmdline(p))]
    assert found, f"no server process for {user}"
    return found[0]


def wait_answer(hub, url: str, within: float = 20):
    """The first answer that is not the proxy's 503 (the emulator may call a pod ready a
    moment before its server listens)."""
    deadline = time.monotonic() + within
    while True:
        r = hub.session.get(url, timeout=30)
        if r.status_code != 503 or time.monotonic() > deadline:
            return r
        time.sleep(0.5)


def facts(pid: int) -> dict[str, str]:
    return {k: v for k, v in procs.environ(pid).items() if k.startswith("GRIDSPAWNER_")}


@pytest.mark.skipif(available() is not None, reason=available() or "")
def test_ssh_host_and_gpu_reach_the_server(tmp_path_factory, username):
    from hubtools import Hub

    workdir = tmp_path_factory.mktemp("sshhub")
    session_root = f"/tmp/gse{os.getpid() % 100000}-{{account}}"
    with SSHLab() as lab:
        host = lab.add_host("a")
        grid = {
            "backends": {
                "hosts": {
                    "kind": "ssh",
                    "display_name": "GPU hosts",
                    **lab.backend_settings(
                        [{"name": "lab-a", "address": host.address,
                          "nvidia_smi": ["env", "FAKE_NVIDIA_SMI_SEED=a",
                                         "FAKE_NVIDIA_SMI_GPUS=Tesla T4,15360;NVIDIA A10,23028", FAKE_SMI]}],
                        workdir, session_root),
                },
            },
            "images": {"lab": {"display_name": "JupyterLab", "ssh": {"cmd": [SINGLEUSER]}}},
            "max_runtime": "2h",
        }
        hub = Hub(grid, workdir=workdir)
        try:
            hub.start()
            hub.spawn_ready(username, {"backend": "hosts", "image": "lab", "gpus": 1, "gpu_memory": 24})
            pid = server_pid(username)
            assert pid in host.pids(), "the server does not run on the lab host"
            env = facts(pid)
            deadline = hub.server(username)["state"]["deadline"]
            stops_file = Path(env.pop("GRIDSPAWNER_STOPS_FILE"))
            assert str(stops_file.parent).startswith(session_root.replace("{account}", "root") + "/")
            assert env == {
                "GRIDSPAWNER_BACKEND": "hosts",
                "GRIDSPAWNER_BACKEND_KIND": "ssh",
                "GRIDSPAWNER_BACKEND_DISPLAY_NAME": "GPU hosts",
                "GRIDSPAWNER_HOST": "lab-a",
                "GRIDSPAWNER_GPUS": "1",
                "GRIDSPAWNER_GPU_MODELS": "NVIDIA A10",
                "GRIDSPAWNER_GPU_MEMORY_GB": "24",
                "GRIDSPAWNER_IMAGE": "lab",
                "GRIDSPAWNER_IMAGE_DISPLAY_NAME": "JupyterLab",
                "GRIDSPAWNER_PROFILE": "",
                "GRIDSPAWNER_PROFILE_DISPLAY_NAME": "",
                "GRIDSPAWNER_DEADLINE": str(math.floor(deadline)),
                "GRIDSPAWNER_DEADLINE_ISO": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.floor(deadline))),
                "GRIDSPAWNER_STOP_WARNINGS": "1800,300",
            }
            url = f"{hub.url}/user/{username}/gridspawner/stops"
            assert hub.session.get(url, timeout=30).json()["stops"] == [{"reason": "max_runtime", "at": math.floor(deadline)}]
            # the hook, on the host: the hub (here: the test) writes the session directory's stops file
            stops_file.write_text(json.dumps({"stops": [{"reason": "max_runtime", "at": 2000000000}]}))
            assert hub.session.get(url, timeout=30).json()["stops"] == [{"reason": "max_runtime", "at": 2000000000}]
            hub.stop_server(username)
            assert not stops_file.parent.exists()
        finally:
            hub.close()
            shutil.rmtree(session_root.replace("{account}", "root"), ignore_errors=True)


NS = "default"
NODES = [
    {"name": "cpu-1", "cpu": "16", "memory": "64Gi"},
    {"name": "gpu-a10", "cpu": "16", "memory": "64Gi", "gpus": 2, "gpu_product": "NVIDIA-A10", "gpu_memory": 23028,
     "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]},
]


def test_kubernetes_node_reaches_the_server(tmp_path_factory, username):
    from hubtools import Hub
    from k8s_emulator import EmulatorProcess

    with EmulatorProcess(NODES, run_pods=True) as cluster:
        grid = {
            "backends": {
                "cluster": {"kind": "kubernetes", "namespace": NS, "kubeconfig": cluster.kubeconfig_path,
                            "display_name": "GPU cluster", "gpu_types": {"a10": {"product": "NVIDIA-A10"}}},
            },
            "images": {"py": {"display_name": "Python", "kubernetes": {
                "image": "quay.io/jupyter/base-notebook:2025-01-01",
                "cmd": [sys.executable, "-m", "jupyterhub.singleuser", "--allow-root"]}}},
            "gpu_memory_classes": [0, 24],
            "stop_warnings": ["20m"],
        }
        hub = Hub(grid, workdir=tmp_path_factory.mktemp("hub"))
        try:
            hub.start()
            hub.spawn_ready(username, {"backend": "cluster", "image": "py", "gpus": 2, "gpu_type": "a10"})
            pod = cluster.get("pods", NS, hub.server(username)["state"]["launch"]["pod"])
            assert pod["spec"]["nodeName"] == "gpu-a10"
            env = facts(server_pid(username))
            assert env["GRIDSPAWNER_HOST"] == "gpu-a10"
            assert env["GRIDSPAWNER_BACKEND_KIND"] == "kubernetes"
            assert env["GRIDSPAWNER_BACKEND_DISPLAY_NAME"] == "GPU cluster"
            assert env["GRIDSPAWNER_GPUS"] == "2"
            assert env["GRIDSPAWNER_GPU_MODELS"] == "NVIDIA-A10,NVIDIA-A10"
            assert env["GRIDSPAWNER_DEADLINE"] == ""  # no maximum run time
            assert env["GRIDSPAWNER_STOP_WARNINGS"] == "1200"
            # the pod's downwardAPI file of its stops annotation (the emulator maps its path to a local file)
            assert env["GRIDSPAWNER_STOPS_FILE"].endswith("/stops.json")
            url = f"{hub.url}/user/{username}/gridspawner/stops"
            r = wait_answer(hub, url)
            assert r.status_code == 200, (r.status_code, r.text[:1000])
            assert r.json()["stops"] == [] and r.json()["warn_before"] == [1200]
            hub.stop_server(username)
        finally:
            hub.close()
        assert cluster.validation_failures == []
