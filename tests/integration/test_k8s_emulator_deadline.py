"""The emulator honours a pod's activeDeadlineSeconds as the kubelet does
(tests/k8s_emulator/deadline.py): counted from the pod's startTime, the pod ends Failed with
reason DeadlineExceeded and a DeadlineExceeded event, its process is stopped, the pod object
and its log stay; a patch may lower the deadline but not raise or remove it."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from k8s_emulator import Emulator

NS = "default"
NODES = [{"name": "cpu-1", "cpu": "16", "memory": "64Gi"}]
SLEEPER = "import time; print('started', flush=True); time.sleep(120)"


def pod(name: str, deadline: int | None) -> dict:
    spec = {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "notebook", "image": "busybox", "command": [sys.executable, "-c", SLEEPER]}]}
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


async def until(api, name: str, check, timeout: float = 20.0):
    end = time.monotonic() + timeout
    while True:
        p = await api.read_namespaced_pod(name, NS)
        if check(p):
            return p
        assert time.monotonic() < end, p.status
        await asyncio.sleep(0.05)


async def test_a_pod_ends_at_its_active_deadline_and_a_patch_may_only_lower_it():
    with Emulator(NODES, run_pods=True, retry_interval=0.05) as emu:
        cfg = client.Configuration()
        await config.load_kube_config(config_file=emu.kubeconfig_path, client_configuration=cfg)
        async with client.ApiClient(cfg) as c:
            api = client.CoreV1Api(c)
            created = await api.create_namespaced_pod(NS, pod("dl", 600))
            await until(api, "dl", lambda p: p.status.phase == "Running")
            uid = created.metadata.uid
            pid = emu.cluster.kubelet.procs[uid]["notebook"].pid
            # raising or removing the deadline is refused (422); lowering it is not
            for body in ({"spec": {"activeDeadlineSeconds": 601}}, [{"op": "remove", "path": "/spec/activeDeadlineSeconds"}]):
                with pytest.raises(ApiException) as e:
                    await api.patch_namespaced_pod("dl", NS, body)
                assert e.value.status == 422 and "activeDeadlineSeconds" in e.value.body
            emu.cluster.validation_failures.clear()  # (refused on purpose)
            started = time.time()
            await api.patch_namespaced_pod("dl", NS, {"metadata": {"uid": uid}, "spec": {"activeDeadlineSeconds": 2}})
            p = await until(api, "dl", lambda p: p.status.phase == "Failed")
            assert time.time() - started < 2 + 5
            assert p.status.reason == "DeadlineExceeded"
            assert p.status.message == "Pod was active on the node longer than the specified deadline"
            assert p.status.container_statuses[0].state.terminated is not None
            events = (await api.list_namespaced_event(NS, field_selector=f"involvedObject.uid={uid}")).items
            assert "DeadlineExceeded" in [e.reason for e in events]
            for _ in range(100):  # its process is stopped
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the pod's process outlived its deadline")
            assert "started" in emu.pod_log(NS, "dl")  # the pod and its log stay
            # a pod that has no deadline runs on; one that ends by itself first is not touched
            await api.create_namespaced_pod(NS, pod("free", None))
            await asyncio.sleep(2.5)
            assert (await api.read_namespaced_pod("free", NS)).status.phase == "Running"
        assert emu.validation_failures == []
