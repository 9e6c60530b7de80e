"""The Kubernetes backend against the API emulator (tests/k8s_emulator): real REST paths,
JSON and watch semantics, a scheduler reading GPU Feature Discovery labels, kubelet events,
fault injection, and every object validated against the Kubernetes 1.33 schema."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
import time
import urllib.request

import pytest

from gridspawner.backends.base import BackendError, LaunchContext, NoCapacity
from gridspawner.backends.kubernetes import KubernetesBackend
from gridspawner.backends.kubernetes.objects import server_names
from gridspawner.backends.kubernetes.settings import parse_image, parse_settings
from gridspawner.request import LaunchRequest
from k8s_emulator import Emulator

NS = "jhub"
TOKEN = "tok-0123456789abcdef"
GPU_TAINT = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
NODES = [
    {"name": "cpu-1", "cpu": "16", "memory": "64Gi"},
    {"name": "gpu-t4", "cpu": "16", "memory": "64Gi", "gpus": 4, "gpu_product": "Tesla-T4", "gpu_memory": 15360, "taints": GPU_TAINT},
    {"name": "gpu-a10", "cpu": "32", "memory": "128Gi", "gpus": 2, "gpu_product": "NVIDIA-A10", "gpu_memory": 23028, "taints": GPU_TAINT},
    {"name": "gpu-a100", "cpu": "64", "memory": "512Gi", "gpus": 2, "gpu_product": "NVIDIA-A100-SXM4-80GB", "gpu_memory": 81920, "taints": GPU_TAINT},
    {"name": "gpu-mig", "cpu": "64", "memory": "512Gi", "gpus": 0, "gpu_product": "NVIDIA-A100-SXM4-80GB", "gpu_memory": 81920, "taints": GPU_TAINT, "mig": {"nvidia.com/mig-1g.10gb": 7}},
]
IMAGES = {
    "base": parse_image("base", {"image": "quay.io/jupyter/base-notebook:2025-01-01"}, "k"),
    "http": parse_image("http", {"image": "python:3.11", "cmd": [sys.executable, "-m", "http.server", "8888", "--bind", "0.0.0.0"]}, "k"),
}


def request(gpus=0, gpu_memory=0, image="base", gpu_type=None, **kw) -> LaunchRequest:
    return LaunchRequest(backend="cluster", backend_kind="kubernetes", image=image, gpus=gpus, gpu_memory=gpu_memory,
                         gpu_type=gpu_type, image_settings=IMAGES.get(image), **kw)


def context(user="alice", server="", progress=None) -> LaunchContext:
    env = {
        "JUPYTERHUB_API_TOKEN": TOKEN,
        "JPY_API_TOKEN": TOKEN,
        "JUPYTERHUB_USER": user,
        "JUPYTERHUB_SERVICE_PREFIX": f"/user/{user}/",
        "JUPYTERHUB_API_URL": "http://hub:8081/hub/api",
    }
    return LaunchContext(
        user=user,
        server_name=server,
        slug=user,
        env=env,
        cmd=("jupyterhub-singleuser",),
        args=(),
        log=logging.getLogger("test.k8s"),
        progress=progress if progress is not None else (lambda m: None),
    )


@pytest.fixture
def emu_factory():
    made = []

    def make(nodes=NODES, **kw) -> Emulator:
        kw.setdefault("namespaces", ("default", NS))
        e = Emulator(nodes, **kw).start()
        made.append(e)
        return e

    yield make
    for e in made:
        failures = e.validation_failures
        e.stop()
        assert failures == [], f"the emulator rejected objects: {failures}"


@pytest.fixture
def emu(emu_factory):
    return emu_factory()


def make_backend(emu, **raw) -> KubernetesBackend:
    raw.setdefault("namespace", NS)
    raw.setdefault("kubeconfig", emu.kubeconfig_path)
    raw.setdefault("gpu_types", {"t4": {"product": "Tesla-T4"}, "mig-small": {"mig": "1g.10gb"}})
    settings = parse_settings("cluster", raw, "c.GridSpawner.backends['cluster']")
    return KubernetesBackend("cluster", settings, tolerance=0.07)


@pytest.fixture
async def backends(emu):
    made = []

    def make(**raw) -> KubernetesBackend:
        b = make_backend(emu, **raw)
        made.append(b)
        return b

    yield make
    for b in made:
        await b.close()


def pod_of(emu, user="alice", server=""):
    return emu.get("pods", NS, server_names(user, server).pod)


# ------------------------------------------------------------------ scheduling


@pytest.mark.parametrize(
    "gpus,gpu_memory,gpu_type,nodes",
    [
        (2, 40, None, {"gpu-a100"}),  # only the A100s have ≥ 40 GB
        (1, 24, None, {"gpu-a10"}),  # the A10's 23028 MiB counts as 24 GB; best fit: not the A100
        (3, 16, None, {"gpu-t4"}),  # the only node with 3 GPUs; 15360 MiB counts as 16 GB
        (1, 0, "t4", {"gpu-t4"}),  # product choice
        (2, 0, "mig-small", {"gpu-mig"}),  # MIG slices
        (0, 0, None, {"cpu-1"}),  # no GPU: tainted GPU nodes are avoided
    ],
)
async def test_scheduled_onto_the_right_node(emu, backends, gpus, gpu_memory, gpu_type, nodes):
    backend = backends()
    messages = []
    launch = await backend.launch(context(progress=messages.append), request(gpus, gpu_memory, gpu_type=gpu_type))
    pod = pod_of(emu)
    assert pod["spec"]["nodeName"] in nodes
    assert launch.state["node"] == pod["spec"]["nodeName"]
    assert launch.url == f"http://{pod['status']['podIP']}:8888"
    assert launch.state["uid"] == pod["metadata"]["uid"]
    assert len(launch.gpus) == gpus
    assert TOKEN not in json.dumps(launch.state)
    assert any("Assigned to a node" in m for m in messages), messages
    assert any("Pulling" in m for m in messages), messages
    await backend.stop(launch)
    assert pod_of(emu) is None


async def test_best_fit_holds_under_the_default_scheduler_scoring(emu_factory):
    """The emulator scores like kube-scheduler (LeastAllocated, BalancedAllocation,
    NodeAffinity weights, random tie-break): A10 and A100 nodes of the same size tie for a
    24 GB request unless the pod prefers the smallest card. Every such request lands on an
    A10 while one is free; then on the 40 GB card before the 80 GB one."""
    nodes = [
        {"name": "gpu-a10", "cpu": "32", "memory": "128Gi", "gpus": 2, "gpu_product": "NVIDIA-A10", "gpu_memory": 23028, "taints": GPU_TAINT},
        {"name": "gpu-a100-40", "cpu": "32", "memory": "128Gi", "gpus": 1, "gpu_product": "NVIDIA-A100-PCIE-40GB", "gpu_memory": 40960, "taints": GPU_TAINT},
        {"name": "gpu-a100-80", "cpu": "32", "memory": "128Gi", "gpus": 2, "gpu_product": "NVIDIA-A100-SXM4-80GB", "gpu_memory": 81920, "taints": GPU_TAINT},
    ]
    emu = emu_factory(nodes)
    backend = make_backend(emu)
    try:
        for i in range(12):  # each alone: the three nodes tie on every default plugin but NodeAffinity
            launch = await backend.launch(context(f"u{i}"), request(gpus=1, gpu_memory=24, cpu=2, memory=8))
            assert launch.state["node"] == "gpu-a10", f"spawn {i} went to {launch.state['node']}"
            await backend.stop(launch)
        held = [await backend.launch(context(f"h{i}"), request(gpus=1, gpu_memory=24, cpu=2, memory=8)) for i in range(5)]
        assert [launch.state["node"] for launch in held] == ["gpu-a10", "gpu-a10", "gpu-a100-40", "gpu-a100-80", "gpu-a100-80"]
        await asyncio.gather(*(backend.stop(launch) for launch in held))
    finally:
        await backend.close()


async def test_token_travels_in_a_secret_removed_at_stop(emu, backends):
    backend = backends()
    launch = await backend.launch(context(), request())
    pod = pod_of(emu)
    assert TOKEN not in json.dumps(pod)
    secret = emu.get("secrets", NS, launch.state["secret"])
    assert base64.b64decode(secret["data"]["JUPYTERHUB_API_TOKEN"]).decode() == TOKEN
    assert not secret["metadata"].get("ownerReferences")  # no patch per spawn
    assert secret["metadata"]["labels"]["gridspawner.io/launch-id"] == launch.state["launch_id"]
    assert pod["metadata"]["annotations"]["gridspawner.io/secret-uid"] == secret["metadata"]["uid"]
    assert launch.state["secret_uid"] == secret["metadata"]["uid"]
    emu.reset_counters()
    await backend.stop(launch)
    assert emu.get("secrets", NS, launch.state["secret"]) is None
    await asyncio.sleep(0.2)  # the watch's DELETED must not send a second delete
    counters = emu.counters()
    assert counters == {"delete pods": 1, "delete secrets": 1}, counters


async def test_watches_are_shared_and_nothing_is_polled(emu, backends):
    backend = backends()
    emu.reset_counters()
    launches = await asyncio.gather(*(backend.launch(context(f"user{i}"), request()) for i in range(4)))
    for launch in launches:
        assert await backend.poll(launch) is None
    counters = emu.counters()
    assert counters.get("watch pods", 0) == 1, counters
    assert counters.get("watch events", 0) == 1, counters
    assert counters.get("get pods", 0) == 0 and counters.get("list pods", 0) == 1, counters
    await asyncio.gather(*(backend.stop(launch) for launch in launches))


# ------------------------------------------------------------------ no capacity


async def test_never_fits_fails_at_once_with_a_clear_message(emu, backends):
    backend = backends(pending_timeout=60)
    started = time.monotonic()
    with pytest.raises(NoCapacity) as info:
        await backend.launch(context(), request(gpus=4, gpu_memory=40))
    assert time.monotonic() - started < 5
    assert "4 free GPUs with ≥ 40 GB" in str(info.value)
    assert pod_of(emu) is None
    assert emu.get("secrets", NS, server_names("alice", "").secret) is None


async def test_busy_cluster_fails_after_pending_timeout(emu, backends):
    backend = backends(pending_timeout=1)
    first = await backend.launch(context("bob"), request(gpus=2, gpu_memory=40))
    started = time.monotonic()
    with pytest.raises(NoCapacity) as info:
        await backend.launch(context("carol"), request(gpus=1, gpu_memory=80))
    waited = time.monotonic() - started
    assert 0.9 <= waited < 4
    assert str(info.value).startswith("no node has 1 free GPU with ≥ 80 GB right now")
    assert pod_of(emu, "carol") is None
    assert emu.get("secrets", NS, server_names("carol", "").secret) is None
    await backend.stop(first)


async def test_unknown_gpu_type_and_image_refused(emu, backends):
    backend = backends()
    with pytest.raises(BackendError, match="offered: t4, mig-small"):
        await backend.launch(context(), request(gpus=1, gpu_type="h100"))
    with pytest.raises(BackendError, match="has nothing to run on Kubernetes"):
        await backend.launch(context(), request(image="nope"))


# ------------------------------------------------------------------ API trouble


async def test_api_errors_are_retried_and_spawn_succeeds(emu, backends):
    backend = backends(api_timeout=1)
    emu.inject_fault(method="POST", path=r"/namespaces/jhub/secrets$", status=500, count=2)
    emu.inject_fault(method="POST", path=r"/namespaces/jhub/pods$", status=429, count=1, retry_after=0)
    emu.inject_fault(method="POST", path=r"/namespaces/jhub/pods$", status=503, count=1)
    emu.inject_fault(method="POST", path=r"/namespaces/jhub/secrets$", hang=3, count=1)  # times out once
    emu.inject_fault(method="GET", path=r"/namespaces/jhub/events", status=500, count=1)  # the first events list
    launch = await backend.launch(context(), request(gpus=1))
    assert pod_of(emu)["metadata"]["uid"] == launch.state["uid"]
    statuses = [(r["method"], r["path"].rsplit("/", 1)[-1], r.get("status")) for r in emu.requests() if r["method"] == "POST"]
    assert ("POST", "secrets", 500) in statuses and ("POST", "pods", 429) in statuses and ("POST", "pods", 503) in statuses
    secret_posts = [r for r in emu.requests() if r["method"] == "POST" and r["path"].endswith("/secrets")]
    assert [r.get("fault") for r in secret_posts][:3] == ["error", "error", "hang"]  # 500, 500, timed out
    assert len(secret_posts) >= 4  # … then retried
    assert pod_of(emu)["status"]["phase"] == "Running"
    emu.inject_fault(method="DELETE", path=r"/pods/", status=500, count=1)
    await backend.stop(launch)
    assert pod_of(emu) is None


async def test_dropped_watches_and_410_still_see_readiness(emu_factory):
    emu = emu_factory(pull_delay=0.5)
    backend = make_backend(emu)
    try:
        task = asyncio.create_task(backend.launch(context(), request()))
        # the launch opens the pod and event watches; on a busy machine that takes a while
        dropped, waited = 0, 0.0
        while dropped < 2 and waited < 10 and not task.done():
            await asyncio.sleep(0.05)
            waited += 0.05
            dropped += emu.drop_watches(abrupt=True)
        assert dropped >= 2
        await asyncio.sleep(0.1)
        emu.compact()
        emu.drop_watches(abrupt=False)  # resuming from a compacted version → 410 → one re-list
        launch = await asyncio.wait_for(task, 15)
        assert launch.url.startswith("http://127.")  # the emulator gives pods loopback addresses
        assert backend.watches.pods.relists_after_gone + backend.watches.events.relists_after_gone >= 1
        await backend.stop(launch)
    finally:
        await backend.close()


# ------------------------------------------------------------------ restart, external changes


async def test_hub_restart_reattaches_from_state(emu, backends):
    first = backends()
    launch = await first.launch(context(), request(gpus=1, gpu_memory=24))
    state = json.loads(json.dumps(launch.state))  # what the hub database keeps
    await first.close()

    second = backends()  # a new hub process
    restored = await second.restore(state)
    assert restored.url == launch.url
    assert [g.uuid for g in restored.gpus] == [g.uuid for g in launch.gpus]
    assert await second.poll(restored) is None
    await second.stop(restored)
    assert pod_of(emu) is None
    assert await second.poll(restored) == 1


async def test_external_deletion_is_seen_with_reason(emu, backends, caplog):
    backend = backends()
    launch = await backend.launch(context(), request())
    emu.delete_pod(NS, launch.state["pod"])
    caplog.set_level(logging.WARNING, logger="gridspawner")
    for _ in range(100):
        status = await backend.poll(launch)
        if status is not None:
            break
        await asyncio.sleep(0.05)
    assert status == 1
    assert "deleted outside the hub" in caplog.text
    await backend.stop(launch)  # stopping a server that is gone is fine
    assert emu.get("secrets", NS, launch.state["secret"]) is None


async def test_eviction_is_seen_with_reason(emu, backends, caplog):
    backend = backends()
    launch = await backend.launch(context(), request(gpus=1))
    emu.evict_pod(NS, launch.state["pod"], delete_after=None)
    caplog.set_level(logging.WARNING, logger="gridspawner")
    for _ in range(100):
        status = await backend.poll(launch)
        if status is not None:
            break
        await asyncio.sleep(0.05)
    assert status not in (None, 0)
    assert "Evicted" in caplog.text and "low on resource: memory" in caplog.text
    await backend.stop(launch)


async def test_eviction_then_deletion_keeps_the_reason(emu, backends, caplog):
    backend = backends()
    launch = await backend.launch(context(), request())
    emu.evict_pod(NS, launch.state["pod"], delete_after=0.05)
    await asyncio.sleep(0.5)
    caplog.set_level(logging.WARNING, logger="gridspawner")
    assert await backend.poll(launch) not in (None, 0)
    assert "Evicted" in caplog.text


def leftovers(emu) -> list[str]:
    """Every pod and Secret still in the namespace."""
    return [f"{kind[:-1]}/{o['metadata']['name']}" for kind in ("pods", "secrets") for o in emu.list(kind, NS)]


@pytest.mark.parametrize(
    "end, status, why",
    [
        ("exit 0", 0, "Completed"),  # the user's File → Shut Down: the server exits cleanly
        ("exit 137", 137, "Error"),  # killed (OOM)
        ("evicted", 137, "Evicted, The node was low on resource: memory."),  # the pod object stays on a real cluster
    ],
)
async def test_a_server_that_ends_by_itself_leaves_nothing(emu, backends, caplog, end, status, why):
    backend = backends()
    launch = await backend.launch(context(), request(gpus=1))
    other = await backend.launch(context("bob"), request())  # must not be touched
    caplog.set_level(logging.INFO, logger="gridspawner")
    emu.reset_counters()
    if end == "evicted":
        emu.evict_pod(NS, launch.state["pod"])
    else:
        emu.exit_container(NS, launch.state["pod"], code=int(end.split()[1]))
    # nobody polls or stops: the pod watch sees it end and deletes the pod and its Secret
    assert await _until(lambda: leftovers(emu) == [f"pod/{other.state['pod']}", f"secret/{other.state['secret']}"]), leftovers(emu)
    assert emu.counters() == {"delete pods": 1, "delete secrets": 1}, emu.counters()
    assert f"removed pod {launch.state['pod']} and Secrets {launch.state['secret']}: the server ended ({why})" in caplog.text
    for _ in range(3):  # JupyterHub polls more than once (poll_and_notify, user_stopped, user.stop)
        assert await backend.poll(launch) == status
    assert caplog.text.count(f"server pod {launch.state['pod']} stopped: {why}") == 1
    await backend.stop(launch)  # a stop afterwards is harmless
    assert await backend.poll(other) is None
    await backend.stop(other)


async def test_poll_removes_an_ended_pod_the_watch_left_to_its_launch(emu, backends):
    """A pod that ends while its launch is still in flight is the launch's; if the launch
    returned anyway, the first poll deletes it."""
    backend = backends()
    launch = await backend.launch(context(), request())
    pod = launch.state["pod"]
    backend.in_flight.add(pod)  # as if the launch of this name were still running
    emu.exit_container(NS, pod, code=1)
    assert await _until(lambda: (emu.get("pods", NS, pod) or {}).get("status", {}).get("phase") == "Failed")
    await asyncio.sleep(0.2)
    assert emu.get("pods", NS, pod) is not None, "the watch leaves a launch's pod alone"
    backend.in_flight.done(pod)
    assert await backend.poll(launch) == 1
    assert await _until(lambda: leftovers(emu) == []), leftovers(emu)


async def test_a_server_that_ended_while_the_hub_was_down_is_removed_at_restart(emu, backends):
    first = backends()
    launch = await first.launch(context(), request(gpus=1))
    state = json.loads(json.dumps(launch.state))
    await first.close()  # the hub is down ...
    emu.exit_container(NS, state["pod"], code=0)  # ... when the user's server exits
    assert await _until(lambda: (emu.get("pods", NS, state["pod"]) or {}).get("status", {}).get("phase") == "Succeeded")
    second = backends()  # the hub starts again: its first poll of the server
    restored = await second.restore(state)
    assert await second.poll(restored) == 0
    assert await _until(lambda: leftovers(emu) == []), leftovers(emu)


async def test_leftover_pod_of_the_same_server_is_replaced(emu, backends):
    backend = backends()
    old = await backend.launch(context(), request())
    new = await backend.launch(context(), request())  # e.g. the hub lost track of the old one
    assert new.state["uid"] != old.state["uid"]
    assert pod_of(emu)["metadata"]["uid"] == new.state["uid"]
    await backend.stop(old)  # the old handle must not delete the new pod (uid precondition)
    assert pod_of(emu)["metadata"]["uid"] == new.state["uid"]
    await backend.stop(new)


# ------------------------------------------------------------------ capacity, home volume


async def test_capacity_from_the_node_watch(emu, backends):
    backend = backends()
    cap = await backend.probe_capacity()
    assert cap.known
    assert cap.total_gpus == 4 + 2 + 2 + 7 and cap.free_gpus == 15
    hosts = {h.name: h for h in cap.hosts}
    assert hosts["gpu-a100"].gpus[0].uuid == "gpu-a100/gpu0"
    assert hosts["gpu-a100"].gpus[0].name == "NVIDIA-A100-SXM4-80GB"
    assert hosts["gpu-a10"].gpus[0].memory_gb == 24
    launch = await backend.launch(context(), request(gpus=2, gpu_memory=40))
    cap = await backend.probe_capacity()
    assert cap.free_gpus == 13
    ok, why = cap.fits(1, 80, 0.07)
    assert not ok and "no host has 1 free GPU with ≥ 80 GB" in why
    emu.add_node({"name": "gpu-h100", "gpus": 8, "gpu_product": "NVIDIA-H100-80GB-HBM3", "gpu_memory": 81559, "taints": GPU_TAINT})
    for _ in range(100):
        cap = await backend.probe_capacity()
        if cap.free_gpus == 21:
            break
        await asyncio.sleep(0.02)
    assert cap.fits(8, 80, 0.07)[0]
    await backend.stop(launch)
    # the stop frees the two 40 GB GPUs again (its speed is bench/bench_kubernetes.py's job)
    for _ in range(100):
        cap = await backend.probe_capacity()
        if cap.free_gpus == 23:
            break
        await asyncio.sleep(0.02)
    assert cap.free_gpus == 23


async def test_home_volume_kept_on_stop_deleted_forever(emu, backends):
    backend = backends(home_volume={"size": "1Gi"})
    launch = await backend.launch(context(), request())
    claim = server_names("alice", "").home_claim
    assert emu.get("persistentvolumeclaims", NS, claim) is not None
    await backend.stop(launch)
    assert emu.get("persistentvolumeclaims", NS, claim) is not None
    again = await backend.launch(context(), request())  # the same home again
    await backend.stop(again)
    await backend.delete_forever("alice", "named", "slug")  # a named server: the user's home stays
    assert emu.get("persistentvolumeclaims", NS, claim) is not None
    await backend.delete_forever("alice", "", "slug")
    for _ in range(100):
        if emu.get("persistentvolumeclaims", NS, claim) is None:
            break
        await asyncio.sleep(0.02)
    assert emu.get("persistentvolumeclaims", NS, claim) is None


# ------------------------------------------------------------------ run mode


async def test_run_mode_url_answers_http(emu_factory):
    emu = emu_factory(run_pods=True)
    backend = make_backend(emu)
    try:
        launch = await backend.launch(context(), request(image="http"))
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(launch.url + "/", timeout=5).status)
        assert body == 200
        emu.exit_container(NS, launch.state["pod"])  # the server process dies (SIGKILL)
        for _ in range(100):
            status = await backend.poll(launch)
            if status is not None:
                break
            await asyncio.sleep(0.05)
        assert status not in (None, 0)
        await backend.stop(launch)
    finally:
        await backend.close()


async def test_without_node_permission_capacity_says_so_and_spawns_work(emu, backends):
    emu.inject_fault(method="GET", path=r"^/api/v1/nodes", status=403, count=-1)
    backend = backends()
    cap = await backend.probe_capacity()
    assert not cap.known and "may not list nodes" in cap.error
    started = time.monotonic()
    launch = await backend.launch(context(), request(gpus=1))
    assert time.monotonic() - started < 3  # a forbidden node list is not waited for
    emu.clear_faults()
    await backend.stop(launch)


async def test_leftover_secret_is_replaced_and_a_retried_create_is_recognised(emu, backends, monkeypatch):
    from gridspawner.backends.kubernetes import backend as backend_mod

    names = server_names("alice", "")
    stale = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": names.secret}, "data": {"JUPYTERHUB_API_TOKEN": base64.b64encode(b"old").decode()}}
    emu.call(emu.cluster.create, "secrets", NS, stale)
    backend = backends()
    launch = await backend.launch(context(), request())
    secret = emu.get("secrets", NS, names.secret)
    assert base64.b64decode(secret["data"]["JUPYTERHUB_API_TOKEN"]).decode() == TOKEN
    await backend.stop(launch)

    # a create whose answer was lost: the object exists with our launch id → it is ours
    monkeypatch.setattr(backend_mod.secrets, "token_hex", lambda n: "fixedlaunchid")
    ours = dict(stale, metadata={"name": names.secret, "annotations": {"gridspawner.io/launch-id": "fixedlaunchid"}}, data=secret["data"])
    emu.call(emu.cluster.create, "secrets", NS, ours)
    emu.reset_counters()
    launch = await backend.launch(context(), request())
    counters = emu.counters()
    assert counters.get("delete secrets", 0) == 0, counters  # recognised, not replaced
    await backend.stop(launch)


# ------------------------------------------------------------------ full hub → proxy → pod


@pytest.mark.jh5
@pytest.mark.hub
def test_hub_spawns_on_kubernetes_and_reattaches_after_restart(make_hub, username, tmp_path):
    """A real hub and proxy; the emulator (own process, run mode) runs jupyterhub-singleuser
    as the pod's process on 127.x.y.N:8888 — the URL the backend returns."""
    from k8s_emulator import EmulatorProcess

    with EmulatorProcess([{"name": "gpu-a100", "gpus": 2, "gpu_memory": 81920, "taints": GPU_TAINT}], run_pods=True) as emu:
        grid = {
            "backends": {"cluster": {"kind": "kubernetes", "namespace": "default", "kubeconfig": emu.kubeconfig_path}},
            "images": {
                "lab": {"kubernetes": {"image": "quay.io/jupyter/base-notebook:2025-01-01",
                                       "cmd": [sys.executable, "-m", "jupyterhub.singleuser", "--allow-root"]}},
            },
            "gpu_memory_classes": [0, 40, 80],
        }
        hub = make_hub(grid=grid)
        hub.spawn_ready(username, {"backend": "cluster", "image": "lab", "gpus": 1, "gpu_memory": 80})
        assert hub.server_status(username).status_code == 200
        pod = emu.get("pods", "default", server_names(username, "").pod)
        assert pod["spec"]["nodeName"] == "gpu-a100"
        assert pod["status"]["podIP"].startswith("127.")
        assert emu.validation_failures == []

        hub.restart_hub()  # state → restore → poll from a new watch
        assert hub.server(username) is not None
        assert hub.server_status(username).status_code == 200

        hub.stop_server(username)
        emu.wait_for(lambda: emu.get("pods", "default", server_names(username, "").pod) is None, timeout=30)
        assert emu.get("secrets", "default", server_names(username, "").secret) is None
        assert emu.validation_failures == []


async def test_capacity_can_count_every_pod_of_the_cluster(emu, backends):
    foreign = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "training-job"},
        "spec": {"containers": [{"name": "c", "image": "pytorch/pytorch", "resources": {"limits": {"nvidia.com/gpu": "2"}}}],
                 "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                 "nodeSelector": {"kubernetes.io/hostname": "gpu-a100"}},
    }
    emu.call(emu.cluster.create, "pods", "default", foreign)
    emu.wait_for(lambda: (emu.get("pods", "default", "training-job") or {}).get("spec", {}).get("nodeName"))
    ours_only = backends()
    everyone = backends(capacity_all_namespaces=True)
    assert (await ours_only.probe_capacity()).free_gpus == 15
    cap = await everyone.probe_capacity()
    assert cap.free_gpus == 13
    assert not {h.name: h for h in cap.hosts}["gpu-a100"].free


async def test_unreachable_cluster_is_a_clear_error():
    emu = Emulator(NODES, namespaces=("default", NS)).start()
    backend = make_backend(emu, api_timeout=1, api_retries=1)
    try:
        await backend.connection.api()  # credentials read; then the API server goes away
        emu.stop()
        with pytest.raises(BackendError, match="does not answer"):
            await backend.launch(context(), request())
        cap = await backend.probe_capacity()
        assert cap.error == "the cluster did not answer"
    finally:
        await backend.close()
        emu.stop()


# ------------------------------------------------------------------ secret lifecycle, requests per spawn


def _stale_secret(name, backend="cluster", user="ghost"):
    return {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "gridspawner", "gridspawner.io/backend": backend,
                                              "component": "singleuser-secret", "hub.jupyter.org/username": user,
                                              "gridspawner.io/launch-id": "0123456789abcdef"}},
        "data": {"JUPYTERHUB_API_TOKEN": base64.b64encode(b"stale").decode()},
    }


async def _until(predicate, timeout=5.0):
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


async def test_orphan_secrets_are_swept_once_when_the_pod_watch_first_lists(emu, backends):
    first = backends()
    running = await first.launch(context("alice"), request())  # a server that outlives this hub process
    await first.close()
    ghost = server_names("ghost", "").secret  # its pod went away while the hub was down
    emu.call(emu.cluster.create, "secrets", NS, _stale_secret(ghost))
    other = server_names("ghost", "x").secret  # another backend's: not ours to judge
    emu.call(emu.cluster.create, "secrets", NS, _stale_secret(other, backend="elsewhere"))
    unrelated = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-password"}, "data": {}}
    emu.call(emu.cluster.create, "secrets", NS, unrelated)

    second = backends()  # the hub restarts
    emu.reset_counters()
    restored = await second.restore(json.loads(json.dumps(running.state)))
    assert await _until(lambda: emu.get("secrets", NS, ghost) is None)
    assert emu.get("secrets", NS, running.state["secret"]) is not None  # its pod still runs
    assert emu.get("secrets", NS, other) is not None and emu.get("secrets", NS, "db-password") is not None
    for i in range(3):  # later spawns do not list secrets again
        launch = await second.launch(context(f"user{i}"), request())
        await second.stop(launch)
    assert emu.counters().get("list secrets") == 1, emu.counters()
    await second.stop(restored)
    assert emu.get("secrets", NS, running.state["secret"]) is None


async def test_the_sweep_never_deletes_the_secret_of_a_launch_in_flight(emu, backends, monkeypatch):
    backend = backends()
    names = server_names("alice", "")
    started = asyncio.Event()
    release = asyncio.Event()
    real_create = backend.connection.create

    async def slow_create(fn, manifest, launch_id, what, wait_gone=None):
        out = await real_create(fn, manifest, launch_id, what, wait_gone)
        if what == "secret":  # the Secret exists, its pod not yet
            started.set()
            await release.wait()
        return out

    monkeypatch.setattr(backend.connection, "create", slow_create)
    task = asyncio.create_task(backend.launch(context(), request()))
    await asyncio.wait_for(started.wait(), 10)
    await backend.secrets.sweep(backend.watches.pods)  # as if the first list happened right now
    assert emu.get("secrets", NS, names.secret) is not None
    release.set()
    launch = await asyncio.wait_for(task, 10)
    assert emu.get("secrets", NS, names.secret) is not None
    await backend.secrets.sweep(backend.watches.pods)  # the pod exists now
    assert emu.get("secrets", NS, names.secret) is not None
    await backend.stop(launch)


async def test_secret_is_deleted_when_its_pod_is_deleted_outside_the_hub(emu, backends):
    backend = backends()
    launch = await backend.launch(context(), request())
    emu.delete_pod(NS, launch.state["pod"])
    assert await _until(lambda: emu.get("secrets", NS, launch.state["secret"]) is None)
    assert await backend.poll(launch) == 1
    await backend.stop(launch)  # the hub's own stop afterwards is harmless


async def test_secret_is_deleted_after_a_failed_launch(emu, backends):
    backend = backends()
    emu.inject_fault(method="POST", path=r"/namespaces/jhub/pods$", status=403, count=1)
    with pytest.raises(BackendError, match="refused"):
        await backend.launch(context(), request())  # the Secret was made, the pod refused
    assert emu.get("secrets", NS, server_names("alice", "").secret) is None
    # (failures after the pod exists: test_never_fits… and test_busy_cluster… check the Secret too)


async def test_a_re_spawn_sends_two_requests_and_stop_two(emu, backends):
    backend = backends(home_volume={"size": "1Gi"})
    first = await backend.launch(context(), request(gpus=1))  # creates the home claim, starts the watches
    await backend.stop(first)
    await asyncio.sleep(0.1)  # let the first-list sweep finish
    emu.reset_counters()
    again = await backend.launch(context(), request(gpus=1))
    assert emu.counters() == {"create secrets": 1, "create pods": 1}, emu.counters()
    emu.reset_counters()
    await backend.stop(again)
    assert emu.counters() == {"delete pods": 1, "delete secrets": 1}, emu.counters()


async def test_a_home_claim_deleted_outside_the_hub_is_created_again(emu, backends):
    backend = backends(home_volume={"size": "1Gi"}, pending_timeout=20)
    claim = server_names("alice", "").home_claim
    first = await backend.launch(context(), request())
    await backend.stop(first)
    emu.call(emu.cluster.delete, "persistentvolumeclaims", NS, claim, {})
    assert await _until(lambda: emu.get("persistentvolumeclaims", NS, claim) is None)
    messages = []
    started = time.monotonic()
    again = await backend.launch(context(progress=messages.append), request())
    assert time.monotonic() - started < 10
    assert emu.get("persistentvolumeclaims", NS, claim) is not None
    assert any("new home volume" in m for m in messages), messages
    await backend.stop(again)


# ------------------------------------------------------------------ gpu_type end to end


@pytest.mark.parametrize(
    "options, node, resource",
    [
        ({"gpus": 1, "gpu_type": "t4"}, "gpu-t4", "nvidia.com/gpu"),
        ({"gpus": 1, "gpu_type": "a100"}, "gpu-a100", "nvidia.com/gpu"),
        ({"gpus": 2, "gpu_type": "mig-small"}, "gpu-mig", "nvidia.com/mig-1g.10gb"),
        ({"gpus": 1, "gpu_memory": 80, "gpu_type": ""}, "gpu-a100", "nvidia.com/gpu"),  # any type, by VRAM
    ],
)
async def test_gpu_type_from_user_options_picks_the_node(emu, options, node, resource):
    """user_options → GridSpawner's preparation (build_request, catalog with the real kind) → launch."""
    from traitlets.config import Config

    from gridspawner import GridSpawner
    from gridspawner.preparation import prepare

    c = Config()
    c.GridSpawner.backends = {
        "cluster": {
            "kind": "kubernetes", "namespace": NS, "kubeconfig": emu.kubeconfig_path,
            "gpu_types": {"t4": {"product": "Tesla-T4"}, "a100": {"product": "NVIDIA-A100-SXM4-80GB"},
                          "mig-small": {"mig": "1g.10gb"}},
        },
    }
    c.GridSpawner.images = {"base": {"kubernetes": {"image": "quay.io/jupyter/base-notebook:2025-01-01"}}}
    c.GridSpawner.gpu_memory_classes = [0, 16, 80]
    spawner = GridSpawner(config=c)
    offered = spawner.catalog.backends["cluster"].gpu_types
    assert dict(offered) == {"t4": "Tesla T4", "a100": "NVIDIA A100 SXM4 80GB", "mig-small": "MIG 1g.10gb"}
    req = (await prepare({"backend": "cluster", "image": "base", **options}, spawner.catalog, [], "alice")).request
    assert req.gpu_type == (options["gpu_type"] or None)
    backend = KubernetesBackend("cluster", spawner.catalog.backends["cluster"].settings)
    try:
        launch = await backend.launch(context(), req)
        pod = pod_of(emu)
        assert pod["spec"]["nodeName"] == node
        assert pod["spec"]["containers"][0]["resources"]["limits"][resource] == str(options["gpus"])
        assert f"gpu_type={options['gpu_type']}" in pod["metadata"]["annotations"]["gridspawner.io/request"] or not options["gpu_type"]
        await backend.stop(launch)
    finally:
        await backend.close()


async def test_unknown_gpu_type_in_user_options_is_a_field_error(emu):
    from traitlets.config import Config

    from gridspawner import GridSpawner
    from gridspawner.request import OptionsError, build_request

    c = Config()
    c.GridSpawner.backends = {"cluster": {"kind": "kubernetes", "namespace": NS, "gpu_types": {"t4": {"product": "Tesla-T4"}}}}
    c.GridSpawner.images = {"base": {"kubernetes": {"image": "quay.io/jupyter/base-notebook:2025-01-01"}}}
    catalog = GridSpawner(config=c).catalog
    with pytest.raises(OptionsError) as info:
        build_request({"gpus": 1, "gpu_type": "h100"}, catalog, [])
    assert info.value.errors == {"gpu_type": "unknown GPU type 'h100'; choose one of: t4"}
