"""The Kubernetes API emulator, driven with kubernetes_asyncio exactly as a backend would.

These tests pin the emulator to real Kubernetes behaviour (paths, JSON, watch semantics,
scheduler and kubelet wording), so the Kubernetes backend's tests can trust it.
"""

from __future__ import annotations

import asyncio
import base64
import time
import urllib.request

import pytest
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from k8s_emulator import Emulator, EmulatorProcess

NS = "default"
GPU_TAINT = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
NODES = [
    {"name": "cpu-1", "cpu": "16", "memory": "64Gi"},
    {"name": "gpu-a10", "cpu": "32", "memory": "128Gi", "gpus": 2, "gpu_product": "NVIDIA-A10",
     "gpu_memory": 23028, "taints": GPU_TAINT},
    {"name": "gpu-a100", "cpu": "64", "memory": "512Gi", "gpus": 4, "gpu_product": "NVIDIA-A100-SXM4-80GB",
     "gpu_memory": 81920, "taints": GPU_TAINT, "mig": {"nvidia.com/mig-1g.10gb": 7}},
]
TOLERATE_GPU = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


@pytest.fixture
def emu():
    with Emulator(NODES) as e:
        yield e
        assert e.validation_failures == [] or getattr(e, "expect_invalid", False), e.validation_failures


@pytest.fixture
async def api(emu):
    cfg = client.Configuration()
    await config.load_kube_config(config_file=emu.kubeconfig_path, client_configuration=cfg)
    async with client.ApiClient(cfg) as c:
        yield client.CoreV1Api(c)


def pod(name: str | None = None, *, gpus: int = 0, labels: dict | None = None, **spec) -> dict:
    c = {"name": "notebook", "image": "quay.io/jupyter/base-notebook:2025-01-01",
         "ports": [{"name": "notebook-port", "containerPort": 8888}],
         "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}}
    if gpus:
        c["resources"]["limits"]["nvidia.com/gpu"] = str(gpus)
    meta = {"labels": labels or {"app": "jupyterhub", "component": "singleuser-server"}}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = "jupyter-"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [c], "restartPolicy": "OnFailure", **spec}}


async def wait_pod(api, name, pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        p = await api.read_namespaced_pod(name, NS)
        if pred(p):
            return p
        if time.monotonic() > deadline:
            raise AssertionError(f"pod {name} never matched; last status {p.status}")
        await asyncio.sleep(0.02)


def ready(p) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])


# ------------------------------------------------------------------ discovery, CRUD, selectors
async def test_discovery(api, emu):
    v = await client.VersionApi(api.api_client).get_code()
    assert (v.major, v.minor) == ("1", "33")
    res = await api.get_api_resources()
    assert {"pods", "services", "secrets", "persistentvolumeclaims", "events", "nodes"} <= {r.name for r in res.resources}
    nodes = await api.list_node()
    a100 = next(n for n in nodes.items if n.metadata.name == "gpu-a100")
    assert a100.metadata.labels["nvidia.com/gpu.memory"] == "81920"
    assert a100.status.allocatable["nvidia.com/gpu"] == "4"
    assert a100.status.allocatable["nvidia.com/mig-1g.10gb"] == "7"


async def test_create_get_list_delete(api, emu):
    created = await api.create_namespaced_pod(NS, pod(labels={"app": "jh", "tier": "a", "user": "ann"}))
    name = created.metadata.name
    assert name.startswith("jupyter-") and len(name) == len("jupyter-") + 5
    assert created.metadata.uid and created.metadata.resource_version and created.metadata.creation_timestamp
    assert created.status.phase == "Pending" and created.status.qos_class == "Burstable"
    # defaults the apiserver fills: requests from limits, service account token volume, tolerations
    assert created.spec.containers[0].resources.requests["memory"] == "1Gi"
    assert created.spec.restart_policy == "OnFailure" and created.spec.scheduler_name == "default-scheduler"
    assert any(t.key == "node.kubernetes.io/not-ready" for t in created.spec.tolerations)
    await api.create_namespaced_pod(NS, pod(labels={"app": "jh", "tier": "b"}))
    await api.create_namespaced_pod(NS, pod(labels={"app": "other"}))
    sel = lambda s: api.list_namespaced_pod(NS, label_selector=s)  # noqa: E731
    assert len((await sel("app=jh")).items) == 2
    assert len((await sel("app=jh,tier in (a,c)")).items) == 1
    assert len((await sel("app in (jh,other),!user")).items) == 2
    assert len((await sel("tier notin (a)")).items) == 2
    assert len((await sel("user")).items) == 1
    lst = await api.list_namespaced_pod(NS, field_selector=f"metadata.name={name}")
    assert [p.metadata.name for p in lst.items] == [name]
    assert int(lst.metadata.resource_version) >= int(created.metadata.resource_version)
    with pytest.raises(ApiException) as e:
        await api.list_namespaced_pod(NS, field_selector="spec.bogus=1")
    assert e.value.status == 400 and "field label not supported: spec.bogus" in e.value.body
    with pytest.raises(ApiException) as e:
        await api.create_namespaced_pod(NS, pod(name))
    assert e.value.status == 409 and '"reason":"AlreadyExists"' in e.value.body
    got = await api.read_namespaced_pod(name, NS)
    assert got.metadata.uid == created.metadata.uid
    # a scheduled pod terminates gracefully: delete returns the pod with deletionTimestamp
    await wait_pod(api, name, ready)
    deleted = await api.delete_namespaced_pod(name, NS, grace_period_seconds=5)
    assert deleted.metadata.deletion_timestamp is not None and deleted.metadata.deletion_grace_period_seconds == 5
    for _ in range(200):
        try:
            await api.read_namespaced_pod(name, NS)
        except ApiException as ex:
            assert ex.status == 404 and f'pods \\"{name}\\" not found' in ex.body
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("pod not removed")
    with pytest.raises(ApiException) as e:
        await api.create_namespaced_pod("nope", pod("x"))
    assert e.value.status == 404 and 'namespaces \\"nope\\" not found' in e.value.body


async def test_pod_status_progression_and_events(api, emu):
    p = await api.create_namespaced_pod(NS, pod("prog"))
    p = await wait_pod(api, "prog", ready)
    assert p.status.phase == "Running" and p.spec.node_name == "cpu-1"
    assert p.status.pod_ip.startswith("127.") and p.status.host_ip
    types = {c.type: c.status for c in p.status.conditions}
    assert types == {"PodScheduled": "True", "Initialized": "True", "ContainersReady": "True", "Ready": "True",
                     "PodReadyToStartContainers": "True"}
    cs = p.status.container_statuses[0]
    assert cs.ready and cs.started and cs.state.running.started_at and cs.restart_count == 0
    evs = await api.list_namespaced_event(NS, field_selector="involvedObject.name=prog,involvedObject.kind=Pod")
    by_reason = {e.reason: e for e in evs.items}
    assert list(by_reason) == ["Scheduled", "Pulling", "Pulled", "Created", "Started"]
    assert by_reason["Scheduled"].message == "Successfully assigned default/prog to cpu-1"
    assert by_reason["Scheduled"].reporting_component == "default-scheduler" and by_reason["Scheduled"].event_time
    assert by_reason["Pulling"].message == 'Pulling image "quay.io/jupyter/base-notebook:2025-01-01"'
    assert by_reason["Created"].message == "Created container: notebook"
    assert by_reason["Started"].message == "Started container notebook"
    assert by_reason["Started"].source.component == "kubelet" and by_reason["Started"].source.host == "cpu-1"
    assert by_reason["Started"].involved_object.field_path == "spec.containers{notebook}"
    assert emu.ready_time(NS, "prog") is not None


# ------------------------------------------------------------------ watch
async def test_watch_and_resume(api, emu):
    lst = await api.list_namespaced_pod(NS, label_selector="app=jupyterhub")
    rv = lst.metadata.resource_version
    await api.create_namespaced_pod(NS, pod("w1"))
    seen = []
    w = watch.Watch()
    async with w.stream(api.list_namespaced_pod, NS, label_selector="app=jupyterhub", resource_version=rv,
                        timeout_seconds=5) as stream:
        async for ev in stream:
            seen.append((ev["type"], ev["object"].metadata.name, ev["object"].status.phase))
            if ready(ev["object"]):
                last_rv = ev["object"].metadata.resource_version
                break
    assert seen[0] == ("ADDED", "w1", "Pending")
    assert seen[-1] == ("MODIFIED", "w1", "Running") and len(seen) >= 3
    # events after last_rv only, delivered on resume, in order
    await api.create_namespaced_pod(NS, pod("w2"))
    await api.delete_namespaced_pod("w1", NS, grace_period_seconds=0)
    got = []
    async with watch.Watch().stream(api.list_namespaced_pod, NS, label_selector="app=jupyterhub",
                                    resource_version=last_rv, timeout_seconds=2) as stream:
        async for ev in stream:
            got.append((ev["type"], ev["object"].metadata.name))
            if ev["type"] == "DELETED":
                break
    assert got[0] == ("ADDED", "w2") and ("DELETED", "w1") in got
    rvs = [int(e.metadata.resource_version) for e in (await api.list_namespaced_event(NS)).items]
    assert len(set(rvs)) == len(rvs)


async def test_watch_without_rv_sends_synthetic_added_and_bookmarks(api, emu):
    emu.cluster.bookmark_interval = 0.2
    await api.create_namespaced_pod(NS, pod("b1"))
    types = []
    async with watch.Watch().stream(api.list_namespaced_pod, NS, allow_watch_bookmarks=True,
                                    timeout_seconds=1) as stream:
        async for ev in stream:
            types.append(ev["type"])
            if ev["type"] == "BOOKMARK":
                assert int(ev["raw_object"]["metadata"]["resourceVersion"]) > 0
                break
    assert types[0] == "ADDED" and types[-1] == "BOOKMARK"


async def test_selector_transition_reads_as_deleted(api, emu):
    await api.create_namespaced_pod(NS, pod("t1", labels={"app": "jupyterhub", "stage": "a"}))
    await wait_pod(api, "t1", ready)  # no scheduler/kubelet MODIFIED left to race the relabel
    rv = (await api.list_namespaced_pod(NS)).metadata.resource_version
    await api.patch_namespaced_pod("t1", NS, {"metadata": {"labels": {"stage": "b"}}})
    async with watch.Watch().stream(api.list_namespaced_pod, NS, label_selector="stage=a", resource_version=rv,
                                    timeout_seconds=1) as stream:
        async for ev in stream:
            assert ev["type"] == "DELETED" and ev["object"].metadata.labels["stage"] == "b"
            break


async def test_410_after_compaction(api, emu):
    rv = (await api.list_namespaced_pod(NS)).metadata.resource_version
    await api.create_namespaced_pod(NS, pod("c1"))
    emu.compact()
    with pytest.raises(ApiException) as e:
        async with watch.Watch().stream(api.list_namespaced_pod, NS, resource_version=rv,
                                        timeout_seconds=2) as stream:
            async for _ in stream:
                pass
    assert e.value.status == 410 and "too old resource version" in e.value.reason
    # a fresh list gives a usable resourceVersion again; c1 must have settled first, or its
    # scheduling and kubelet updates (MODIFIED c1) race ahead of ADDED c2
    await wait_pod(api, "c1", ready)
    rv2 = (await api.list_namespaced_pod(NS)).metadata.resource_version
    await api.create_namespaced_pod(NS, pod("c2"))
    async with watch.Watch().stream(api.list_namespaced_pod, NS, resource_version=rv2,
                                    timeout_seconds=2) as stream:
        async for ev in stream:
            assert (ev["type"], ev["object"].metadata.name) == ("ADDED", "c2")
            break


async def test_drop_watches_ends_stream(api, emu):
    rv = (await api.list_namespaced_pod(NS)).metadata.resource_version
    t0 = time.monotonic()

    async def consume():
        async with watch.Watch().stream(api.list_namespaced_pod, NS, resource_version=rv,
                                        timeout_seconds=30) as stream:
            async for _ in stream:
                pass

    task = asyncio.create_task(consume())
    for _ in range(100):
        if emu.cluster.store.watchers:
            break
        await asyncio.sleep(0.01)
    assert emu.drop_watches() == 1
    await asyncio.wait_for(task, 5)
    assert time.monotonic() - t0 < 5


# ------------------------------------------------------------------ scheduling
def vram_affinity(min_mib: int) -> dict:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "nvidia.com/gpu.memory", "operator": "Gt", "values": [str(min_mib)]}]}]}}}


async def test_gpu_vram_affinity_picks_the_right_node(api, emu):
    await api.create_namespaced_pod(NS, pod("big", gpus=1, tolerations=TOLERATE_GPU, affinity=vram_affinity(40000)))
    await api.create_namespaced_pod(NS, pod("small", gpus=2, tolerations=TOLERATE_GPU,
                                            nodeSelector={"nvidia.com/gpu.product": "NVIDIA-A10"}))
    big = await wait_pod(api, "big", ready)
    small = await wait_pod(api, "small", ready)
    assert big.spec.node_name == "gpu-a100" and small.spec.node_name == "gpu-a10"
    assert emu.gpu_usage()["gpu-a100"] == {"allocatable": 4, "used": 1}
    # a MIG slice is just another extended resource
    mig = pod("mig", tolerations=TOLERATE_GPU)
    mig["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/mig-1g.10gb"] = "1"
    await api.create_namespaced_pod(NS, mig)
    assert (await wait_pod(api, "mig", ready)).spec.node_name == "gpu-a100"


async def test_scoring_follows_kube_scheduler_defaults():
    """Equal nodes tie and are picked at random (not by name); LeastAllocated sends a pod to
    the emptier node; a preferred node affinity outweighs both (NodeAffinity × 2)."""
    twins = [{"name": n, "cpu": "8", "memory": "32Gi"} for n in ("node-a", "node-b")]
    with Emulator(twins) as emu:
        cfg = client.Configuration()
        await config.load_kube_config(config_file=emu.kubeconfig_path, client_configuration=cfg)
        async with client.ApiClient(cfg) as c:
            api = client.CoreV1Api(c)
            seen = set()
            for i in range(16):  # one at a time on empty nodes: each a tie
                await api.create_namespaced_pod(NS, pod(f"tie{i}"))
                seen.add((await wait_pod(api, f"tie{i}", lambda p: p.spec.node_name)).spec.node_name)
                await api.delete_namespaced_pod(f"tie{i}", NS, grace_period_seconds=0)
                await wait_gone(api, f"tie{i}")
            assert seen == {"node-a", "node-b"}, "ties are broken at random"
            big = pod("busy")
            big["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "6", "memory": "24Gi"}}
            big["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "node-a"}
            await api.create_namespaced_pod(NS, big)
            await wait_pod(api, "busy", lambda p: p.spec.node_name)
            for i in range(4):  # node-a is three quarters booked: LeastAllocated prefers node-b
                await api.create_namespaced_pod(NS, pod(f"least{i}"))
                assert (await wait_pod(api, f"least{i}", lambda p: p.spec.node_name)).spec.node_name == "node-b"
                await api.delete_namespaced_pod(f"least{i}", NS, grace_period_seconds=0)
                await wait_gone(api, f"least{i}")
            prefer = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-a"]}]}}]}}
            await api.create_namespaced_pod(NS, pod("preferred", affinity=prefer))
            assert (await wait_pod(api, "preferred", lambda p: p.spec.node_name)).spec.node_name == "node-a"
        assert emu.validation_failures == []


async def wait_gone(api, name, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            await api.read_namespaced_pod(name, NS)
        except ApiException as e:
            if e.status == 404:
                return
            raise
        assert time.monotonic() < deadline, f"pod {name} still there"
        await asyncio.sleep(0.02)


async def test_failed_scheduling_message_and_retry(api, emu):
    # no toleration: the tainted GPU nodes are out, the CPU node has no GPUs
    await api.create_namespaced_pod(NS, pod("notol", gpus=1))
    msg = ("0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 node(s) had untolerated taint "
           "{nvidia.com/gpu: present}. preemption: 0/3 nodes are available: 1 No preemption victims found for "
           "incoming pod, 2 Preemption is not helpful for scheduling.")
    p = await wait_pod(api, "notol", lambda p: p.status.conditions)
    cond = p.status.conditions[0]
    assert (cond.type, cond.status, cond.reason, cond.message) == ("PodScheduled", "False", "Unschedulable", msg)
    evs = await api.list_namespaced_event(NS, field_selector="involvedObject.name=notol,reason=FailedScheduling")
    assert evs.items[0].message == msg and evs.items[0].type == "Warning"
    # affinity nobody matches (NodeAffinity runs before NodeResourcesFit, so it is the reason everywhere)
    await api.create_namespaced_pod(NS, pod("huge", gpus=1, tolerations=TOLERATE_GPU, affinity=vram_affinity(100000)))
    p = await wait_pod(api, "huge", lambda p: p.status.conditions)
    assert p.status.conditions[0].message == (
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. preemption: "
        "0/3 nodes are available: 3 Preemption is not helpful for scheduling.")
    # fill the A100, the next 4-GPU pod waits, and runs once capacity frees up
    await api.create_namespaced_pod(NS, pod("fill", gpus=4, tolerations=TOLERATE_GPU, affinity=vram_affinity(40000)))
    await wait_pod(api, "fill", ready)
    await api.create_namespaced_pod(NS, pod("wait", gpus=4, tolerations=TOLERATE_GPU, affinity=vram_affinity(40000)))
    p = await wait_pod(api, "wait", lambda p: p.status.conditions)
    assert p.status.phase == "Pending" and p.status.conditions[0].reason == "Unschedulable"
    await api.delete_namespaced_pod("fill", NS, grace_period_seconds=1)
    p = await wait_pod(api, "wait", ready, timeout=5)
    assert p.spec.node_name == "gpu-a100"


async def test_not_ready_node_and_added_node(api, emu):
    emu.set_node_ready("cpu-1", False)
    await api.create_namespaced_pod(NS, pod("cpuonly", nodeSelector={"kubernetes.io/hostname": "cpu-1"}))
    p = await wait_pod(api, "cpuonly", lambda p: p.status.conditions)
    assert "1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }" in p.status.conditions[0].message
    emu.add_node({"name": "cpu-2", "cpu": "8", "memory": "16Gi", "labels": {"kubernetes.io/hostname": "cpu-1"}})
    p = await wait_pod(api, "cpuonly", ready)
    assert p.spec.node_name == "cpu-2"


async def test_pvc_binds_and_missing_claim_blocks(api, emu):
    vol = [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-ann"}}]
    p = pod("withpvc", volumes=vol)
    p["spec"]["containers"][0]["volumeMounts"] = [{"name": "home", "mountPath": "/home/jovyan"}]
    await api.create_namespaced_pod(NS, p)
    got = await wait_pod(api, "withpvc", lambda p: p.status.conditions)
    assert 'persistentvolumeclaim "claim-ann" not found' in got.status.conditions[0].message
    await api.create_namespaced_persistent_volume_claim(NS, {
        "metadata": {"name": "claim-ann"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}})
    await wait_pod(api, "withpvc", ready)
    pvc = await api.read_namespaced_persistent_volume_claim("claim-ann", NS)
    assert pvc.status.phase == "Bound" and pvc.metadata.finalizers == ["kubernetes.io/pvc-protection"]
    # pvc-protection: deleting a claim in use leaves it Terminating until the pod is gone
    out = await api.delete_namespaced_persistent_volume_claim("claim-ann", NS)
    assert out.metadata.deletion_timestamp is not None
    await api.delete_namespaced_pod("withpvc", NS, grace_period_seconds=0)
    for _ in range(100):
        if not (await api.list_namespaced_persistent_volume_claim(NS)).items:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("claim not removed after its pod went")


# ------------------------------------------------------------------ GC, patch, delete
async def test_gc_of_owned_objects_and_patch(api, emu):
    p = await api.create_namespaced_pod(NS, pod("owner"))
    owner = [{"apiVersion": "v1", "kind": "Pod", "name": "owner", "uid": p.metadata.uid,
              "blockOwnerDeletion": True, "controller": False}]
    sec = await api.create_namespaced_secret(NS, {"metadata": {"name": "owner-creds"},
                                                  "stringData": {"AWS_SECRET_ACCESS_KEY": "s3cr3t"}})
    assert sec.type == "Opaque" and base64.b64decode(sec.data["AWS_SECRET_ACCESS_KEY"]) == b"s3cr3t"
    assert sec.string_data is None
    # strategic merge on metadata.ownerReferences (merge key uid)
    patched = await api.patch_namespaced_secret("owner-creds", NS, {"metadata": {"ownerReferences": owner}})
    assert patched.metadata.owner_references[0].uid == p.metadata.uid
    await api.create_namespaced_service(NS, {"metadata": {"name": "owner-svc", "ownerReferences": owner},
                                             "spec": {"selector": {"app": "x"}, "ports": [{"port": 8888}]}})
    svc = await api.read_namespaced_service("owner-svc", NS)
    assert svc.spec.cluster_ip and svc.spec.ports[0].target_port == 8888
    # a pod's spec is immutable apart from images & co
    with pytest.raises(ApiException) as e:
        await api.patch_namespaced_pod("owner", NS, {"spec": {"restartPolicy": "Never"}})
    assert e.value.status == 422 and "pod updates may not change fields" in e.value.body
    emu.expect_invalid = True
    # a stale resourceVersion is a conflict
    with pytest.raises(ApiException) as e:
        await api.patch_namespaced_pod("owner", NS, {"metadata": {"resourceVersion": "1", "labels": {"a": "b"}}})
    assert e.value.status == 409 and '"reason":"Conflict"' in e.value.body
    # delete with an explicit propagation policy; then GC takes the secret and the service
    await api.delete_namespaced_pod("owner", NS, grace_period_seconds=0, propagation_policy="Background")
    for _ in range(100):
        secs = [s.metadata.name for s in (await api.list_namespaced_secret(NS)).items]
        svcs = [s.metadata.name for s in (await api.list_namespaced_service(NS)).items]
        if not secs and not svcs:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError(f"not collected: {secs} {svcs}")
    # a Status comes back for secrets
    await api.create_namespaced_secret(NS, {"metadata": {"name": "plain"}, "data": {"k": "dg=="}})
    st = await api.delete_namespaced_secret("plain", NS)
    assert st.status == "Success" and st.details.name == "plain"


async def test_orphan_propagation_keeps_dependents(api, emu):
    p = await api.create_namespaced_pod(NS, pod("o2"))
    owner = [{"apiVersion": "v1", "kind": "Pod", "name": "o2", "uid": p.metadata.uid}]
    await api.create_namespaced_secret(NS, {"metadata": {"name": "kept", "ownerReferences": owner}})
    await api.delete_namespaced_pod("o2", NS, grace_period_seconds=0, propagation_policy="Orphan")
    await asyncio.sleep(0.1)
    s = await api.read_namespaced_secret("kept", NS)
    assert s.metadata.owner_references is None


# ------------------------------------------------------------------ validation
async def test_validation_failures_are_422_and_recorded(api, emu):
    emu.expect_invalid = True
    bad = pod("bad")
    bad["spec"]["containers"][0]["bogusField"] = 1
    with pytest.raises(ApiException) as e:
        await api.create_namespaced_pod(NS, bad)
    assert e.value.status == 422 and "bogusField" in e.value.body
    gpu = pod("gpu-mismatch", gpus=1)
    gpu["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = "2"
    with pytest.raises(ApiException) as e:
        await api.create_namespaced_pod(NS, gpu)
    assert "spec.containers[0].resources.requests[nvidia.com/gpu]: Invalid value: \\\"2\\\": must be equal to " \
           "nvidia.com/gpu limit of 1" in e.value.body
    with pytest.raises(ApiException) as e:
        await api.create_namespaced_pod(NS, pod("Upper_Case"))
    assert "a lowercase RFC 1123 subdomain" in e.value.body
    aff = pod("gt", affinity=vram_affinity(1))
    aff["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"][0]["matchExpressions"][0]["values"] = ["24GB"]
    with pytest.raises(ApiException) as e:
        await api.create_namespaced_pod(NS, aff)
    assert "must be an integer" in e.value.body
    long_port = pod("port")
    long_port["spec"]["containers"][0]["ports"][0]["name"] = "notebook-port-long"
    with pytest.raises(ApiException):
        await api.create_namespaced_pod(NS, long_port)
    failures = emu.validation_failures
    assert [f["name"] for f in failures] == ["bad", "gpu-mismatch", "Upper_Case", "gt", "port"]
    assert failures[0]["layer"] == "schema" and failures[1]["layer"] == "semantic"
    assert not (await api.list_namespaced_pod(NS)).items


# ------------------------------------------------------------------ faults and test controls
async def test_fault_injection(api, emu):
    emu.inject_fault(method="POST", path=r"/namespaces/default/pods$", status=500, count=1)
    with pytest.raises(ApiException) as e:
        await api.create_namespaced_pod(NS, pod("f1"))
    assert e.value.status == 500 and '"reason":"InternalError"' in e.value.body
    await api.create_namespaced_pod(NS, pod("f1"))  # only the next one failed
    emu.inject_fault(method="GET", path="/pods", status=429, retry_after=3)
    with pytest.raises(ApiException) as e:
        await api.list_namespaced_pod(NS)
    assert e.value.status == 429 and e.value.headers["Retry-After"] == "3"
    emu.inject_fault(method="GET", path="/pods/f1$", hang=0.3)
    t0 = time.monotonic()
    await api.read_namespaced_pod("f1", NS)
    assert time.monotonic() - t0 >= 0.3
    c = emu.counters()
    assert c["create pods"] == 2 and c["list pods"] == 1 and c["get pods"] == 1
    assert any(r.get("fault") == "hang" for r in emu.requests())


async def test_evict_and_external_delete(api, emu):
    await api.create_namespaced_pod(NS, pod("ev"))
    await wait_pod(api, "ev", ready)
    rv = (await api.list_namespaced_pod(NS)).metadata.resource_version
    emu.evict_pod(NS, "ev", delete_after=0.1)
    seen = []
    async with watch.Watch().stream(api.list_namespaced_pod, NS, resource_version=rv, timeout_seconds=3) as s:
        async for ev in s:
            seen.append((ev["type"], ev["object"].status.phase, ev["object"].status.reason))
            if ev["type"] == "DELETED":
                break
    assert seen[0] == ("MODIFIED", "Failed", "Evicted") and seen[-1][0] == "DELETED"
    evs = emu.events_for(NS, "ev")
    assert any(e["reason"] == "Evicted" and e["message"].startswith("The node was low on resource: memory.")
               for e in evs)
    await api.create_namespaced_pod(NS, pod("ext"))
    await wait_pod(api, "ext", ready)
    emu.delete_pod(NS, "ext")
    with pytest.raises(ApiException):
        await api.read_namespaced_pod("ext", NS)


# ------------------------------------------------------------------ run mode
SERVER = ("import http.server, os, sys\n"
          "assert os.environ['TOKEN'] == 'tok-123', os.environ.get('TOKEN')\n"
          "http.server.HTTPServer((sys.argv[1], 8888), http.server.SimpleHTTPRequestHandler).serve_forever()\n")


async def test_run_mode_runs_the_command(tmp_path):
    import sys
    with Emulator(NODES, run_pods=True, retry_interval=0.05) as emu:
        cfg = client.Configuration()
        await config.load_kube_config(config_file=emu.kubeconfig_path, client_configuration=cfg)
        async with client.ApiClient(cfg) as c:
            api = client.CoreV1Api(c)
            p = pod("run")
            p["spec"]["containers"][0].update({
                "command": [sys.executable, "-c", SERVER], "args": ["0.0.0.0"],
                "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "run-secret", "key": "token"}}}]})
            created = await api.create_namespaced_pod(NS, p)
            waiting = await wait_pod(api, "run", lambda p: p.status.container_statuses and
                                     p.status.container_statuses[0].state.waiting and
                                     p.status.container_statuses[0].state.waiting.reason ==
                                     "CreateContainerConfigError")
            assert waiting.status.container_statuses[0].state.waiting.message == 'secret "run-secret" not found'
            await api.create_namespaced_secret(NS, {"metadata": {"name": "run-secret", "ownerReferences": [
                {"apiVersion": "v1", "kind": "Pod", "name": "run", "uid": created.metadata.uid}]},
                "stringData": {"token": "tok-123"}})
            p = await wait_pod(api, "run", ready, timeout=10)
            ip = p.status.pod_ip
            assert ip.startswith("127.") and ip != "127.0.0.1"
            body = await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://{ip}:8888/", timeout=2).status)
            assert body == 200
            pid = emu.cluster.kubelet.procs[created.metadata.uid]["notebook"].pid
            await api.delete_namespaced_pod("run", NS, grace_period_seconds=2)
            for _ in range(200):
                try:
                    await api.read_namespaced_pod("run", NS)
                except ApiException:
                    break
                await asyncio.sleep(0.02)
            import os
            with pytest.raises(ProcessLookupError):
                for _ in range(50):
                    os.kill(pid, 0)
                    await asyncio.sleep(0.02)
            # a process that exits: restartPolicy Never → Failed with the exit code
            q = pod("crash", restartPolicy="Never")
            q["spec"]["containers"][0]["command"] = [sys.executable, "-c", "import sys; sys.exit(3)"]
            await api.create_namespaced_pod(NS, q)
            p = await wait_pod(api, "crash", lambda p: p.status.phase == "Failed", timeout=10)
            assert p.status.container_statuses[0].state.terminated.exit_code == 3
        assert emu.validation_failures == []


def test_subprocess_mode():
    with EmulatorProcess(NODES, run_pods=False) as emu:
        async def go():
            cfg = client.Configuration()
            await config.load_kube_config(config_file=emu.kubeconfig_path, client_configuration=cfg)
            async with client.ApiClient(cfg) as c:
                api = client.CoreV1Api(c)
                await api.create_namespaced_pod(NS, pod("sub", gpus=1, tolerations=TOLERATE_GPU))
                return await wait_pod(api, "sub", ready)

        p = asyncio.run(go())
        assert p.spec.node_name in ("gpu-a10", "gpu-a100")
        assert emu.counters()["create pods"] == 1
        assert emu.ready_time(NS, "sub") is not None
        emu.inject_fault(method="GET", path="/nodes", status=503)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(emu.url + "/api/v1/nodes")
        assert e.value.code == 503
        assert emu.validation_failures == []
