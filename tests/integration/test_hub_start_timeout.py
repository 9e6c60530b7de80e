"""JupyterHub's start timeout follows the chosen backend's budget, unless the admin sets it.

JupyterHub gives ``Spawner.start()`` ``start_timeout`` seconds (default 60) and then gives
up on the server. A Kubernetes pod that pulls a large CUDA image takes minutes, and the
Kubernetes backend allows that (``start_timeout``, default 300 s): the spawner must not let
JupyterHub's 60 s cut it. A real hub and proxy; the Kubernetes API emulator (own process,
run mode) delays the image pull and then runs jupyterhub-singleuser as the pod's process.
"""

from __future__ import annotations

import json
import sys
import time

import pytest

from gridspawner.backends.kubernetes.objects import server_names

pytestmark = [pytest.mark.hub, pytest.mark.timeout(240)]

GPU_TAINT = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]


def cluster_grid(emu) -> dict:
    return {
        "backends": {"cluster": {"kind": "kubernetes", "namespace": "default", "kubeconfig": emu.kubeconfig_path}},
        "images": {
            "cuda": {"kubernetes": {"image": "nvcr.io/nvidia/pytorch:25.01-py3",
                                    "cmd": [sys.executable, "-m", "jupyterhub.singleuser", "--allow-root"]}},
        },
        "gpu_memory_classes": [0, 80],
    }


def slow_pull_emulator(seconds: float):
    from k8s_emulator import EmulatorProcess

    nodes = [{"name": "gpu-a100", "gpus": 2, "gpu_memory": 81920, "taints": GPU_TAINT}]
    return EmulatorProcess(nodes, run_pods=True, extra_args=["--options", json.dumps({"pull_delay": seconds})])


def _status_eventually(hub, username: str, timeout: float = 30) -> int:
    """The server's /api/status through the proxy, retried while the route settles."""
    deadline = time.monotonic() + timeout
    while True:
        code = hub.server_status(username).status_code
        if code == 200 or time.monotonic() > deadline:
            return code
        time.sleep(0.5)


def test_an_image_pull_longer_than_jupyterhubs_60_s_default_is_not_cut(make_hub, username):
    """No start_timeout in the config: the pod becomes ready after a 63 s pull, within the
    Kubernetes backend's 300 s, and the server is reached through the proxy."""
    with slow_pull_emulator(63) as emu:
        hub = make_hub(grid=cluster_grid(emu), start_timeout=None)
        mark = hub.log_mark()
        hub.create_user(username)
        started = time.monotonic()
        r = hub.spawn(username, {"backend": "cluster", "image": "cuda", "gpus": 1})
        assert r.status_code in (201, 202), r.text
        hub.wait_ready(username, timeout=200)
        assert time.monotonic() - started > 60, "the pull was meant to outlast JupyterHub's default"
        assert _status_eventually(hub, username) == 200
        log = hub.log_since(mark)
        assert "failed to start in" not in log, log[-3000:]
        # the budget the spawner gave JupyterHub: 300 + 60 + 3 * 30 (see start_budget)
        assert "(start timeout 450 s)" in log, log[-3000:]
        hub.stop_server(username)
        emu.wait_for(lambda: emu.get("pods", "default", server_names(username, "").pod) is None, timeout=30)


def test_a_start_timeout_the_admin_sets_wins(make_hub, username):
    """``c.Spawner.start_timeout`` set explicitly: JupyterHub gives up after it, even though
    the backend would wait longer — the admin's word is final."""
    with slow_pull_emulator(30) as emu:
        hub = make_hub(grid=cluster_grid(emu), start_timeout=5)
        hub.create_user(username)
        started = time.monotonic()
        r = hub.spawn(username, {"backend": "cluster", "image": "cuda", "gpus": 1})
        assert r.status_code != 201, r.text  # JupyterHub gave up on it within the request
        hub.wait_stopped(username, timeout=60)
        assert time.monotonic() - started < 25
        emu.wait_for(lambda: emu.get("pods", "default", server_names(username, "").pod) is None, timeout=30)
        log = hub.log()
        assert "failed to start in 5 seconds" in log, log[-3000:]
        assert "(start timeout 5 s)" in log
