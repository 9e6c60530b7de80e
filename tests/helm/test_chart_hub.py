"""The chart's own hub configuration behind a real hub: a `helm upgrade` (a new hub pod) must
not stop anybody's server.

A REAL helm renders the chart; the rendered ConfigMap's files are written out as the hub pod
mounts them, and a real JupyterHub runs that jupyterhub_config.py (hubtools'
CHART_CONFIG_TEMPLATE sets only this machine's addresses, files and login after it — no
server lifecycle setting of the harness's own). Its Kubernetes backend talks to the API
emulator, which runs each pod's server as a local process. The hub is stopped as the old
hub pod is (SIGTERM) and started again: the servers keep running and are re-attached.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from helm_render import CHART, NAMESPACE, RELEASE, one, run_helm
from hubtools import Hub

from gridspawner.backends.kubernetes.objects import server_names
from k8s_emulator import EmulatorProcess

pytestmark = pytest.mark.hub

NODES = [{"name": "node-1", "cpu": "16", "memory": "64Gi"}]


def render_chart_config(tmp_path: Path, values: dict) -> Path:
    """helm template with ``values``; the hub ConfigMap's files in a directory, as mounted
    in the hub pod. Returns the path of its jupyterhub_config.py."""
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    out = run_helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, "-f", str(values_file)).stdout
    configmap = one([d for d in yaml.safe_load_all(out) if d], "ConfigMap")
    config_dir = tmp_path / "etc-jupyterhub"
    config_dir.mkdir()
    for name, text in configmap["data"].items():
        (config_dir / name).write_text(text)
    return config_dir / "jupyterhub_config.py"


def test_the_chart_keeps_servers_running_across_a_hub_restart(tmp_path):
    with EmulatorProcess(NODES, run_pods=True) as emu:
        config = render_chart_config(tmp_path, {
            "gridspawner": {
                "backends": {"cluster": {"kind": "kubernetes", "namespace": "default", "kubeconfig": emu.kubeconfig_path}},
                "images": {"lab": {"kubernetes": {"image": "quay.io/jupyter/base-notebook:2025-01-01",
                                                  "cmd": [sys.executable, "-m", "jupyterhub.singleuser", "--allow-root"]}}},
                "max_gpus": 0,
            },
        })
        hub = Hub(workdir=tmp_path / "hub", chart_config=config)
        assert ".cleanup_servers" not in hub.config_file.read_text(), "the chart alone decides"
        try:
            hub.start()
            users = ["ada", "grace"]
            pods = {}
            for user in users:
                hub.spawn_ready(user, {"backend": "cluster", "image": "lab"})
                assert hub.server_status(user).status_code == 200
                pods[user] = emu.get("pods", "default", server_names(user, "").pod)["metadata"]["uid"]

            hub.stop_hub()  # what a helm upgrade does to the old hub pod (the Deployment's Recreate)
            for user in users:
                pod = emu.get("pods", "default", server_names(user, "").pod)
                assert pod is not None and pod["metadata"]["uid"] == pods[user], f"{user}'s server was stopped with the hub"
                assert pod["status"]["phase"] == "Running"

            hub.start_hub()  # the new hub pod
            for user in users:
                assert hub.server(user) is not None and hub.server(user)["ready"], hub.log()[-3000:]
                assert hub.server_status(user).status_code == 200
                assert emu.get("pods", "default", server_names(user, "").pod)["metadata"]["uid"] == pods[user]
            assert "appears to have stopped while the Hub was down" not in hub.log()

            # the chart enables gridspawner's home page: the re-attached server's facts
            home = hub.form_session("ada").http.get(f"{hub.url}/hub/home", timeout=30)
            assert home.status_code == 200
            table = home.text[home.text.index('id="gridspawner-servers"'):]
            assert "node-1" in table and "no time limit" in table, table[:3000]
        finally:
            hub.close()
        assert emu.list("pods", "default") == [] and emu.list("secrets", "default") == []
        assert emu.validation_failures == []
