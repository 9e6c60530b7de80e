"""The emulator's downwardAPI volumes in run mode (tests/k8s_emulator/downward.py): the files
a running pod sees, refreshed when a PATCH changes the annotation they project, as the
kubelet does (a real one at its next sync); the container's environment names the files
where this machine keeps them. What the Kubernetes backend's stops file relies on."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from k8s_emulator import Emulator

NS = "default"
NODES = [{"name": "cpu-1", "cpu": "16", "memory": "64Gi"}]
#: prints the projected file the environment names, then waits
PRINTER = "import os, time; print('seen:', open(os.environ['STOPS']).read(), flush=True); time.sleep(60)"


def pod() -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "dw", "labels": {"app": "x"}, "annotations": {"example.org/stops": '{"stops":[]}'}},
            "spec": {"restartPolicy": "Never", "containers": [{
                "name": "notebook", "image": "busybox", "command": [sys.executable, "-c", PRINTER],
                "env": [{"name": "STOPS", "value": "/etc/info/stops.json"}],
                "volumeMounts": [{"name": "info", "mountPath": "/etc/info", "readOnly": True}]}],
                "volumes": [{"name": "info", "downwardAPI": {"items": [
                    {"path": "stops.json", "fieldRef": {"fieldPath": "metadata.annotations['example.org/stops']"}},
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}]}}


async def test_a_patched_annotation_reaches_the_projected_file():
    with Emulator(NODES, run_pods=True, retry_interval=0.05) as emu:
        cfg = client.Configuration()
        await config.load_kube_config(config_file=emu.kubeconfig_path, client_configuration=cfg)
        async with client.ApiClient(cfg) as c:
            api = client.CoreV1Api(c)
            created = await api.create_namespaced_pod(NS, pod())
            deadline = time.monotonic() + 10
            while "seen:" not in emu.pod_log(NS, "dw"):
                assert time.monotonic() < deadline, emu.pod_log(NS, "dw")
                await asyncio.sleep(0.05)
            # the process read the file through the path its environment names
            assert 'seen: {"stops":[]}' in emu.pod_log(NS, "dw")
            assert emu.pod_file(NS, "dw", "/etc/info/labels") == 'app="x"'
            # a strategic-merge patch (what the client sends for a dict body) of the annotation
            doc = '{"stops":[{"reason":"idle","at":1767225600}]}'
            await api.patch_namespaced_pod("dw", NS, {"metadata": {"uid": created.metadata.uid,
                                                                   "annotations": {"example.org/stops": doc}}})
            assert emu.pod_file(NS, "dw", "/etc/info/stops.json") == doc
            # a patch naming another uid is refused (uids are immutable) and changes nothing
            with pytest.raises(ApiException) as e:
                await api.patch_namespaced_pod("dw", NS, {"metadata": {"uid": "another",
                                                                       "annotations": {"example.org/stops": "{}"}}})
            assert e.value.status == 422
            assert emu.pod_file(NS, "dw", "/etc/info/stops.json") == doc
            with pytest.raises(Exception, match="no downwardAPI volume mounted above /home/jovyan/other"):
                emu.pod_file(NS, "dw", "/home/jovyan/other")
            await api.delete_namespaced_pod("dw", NS, grace_period_seconds=0)
        assert emu.validation_failures == []
