"""Kubernetes backend benchmark against the API emulator (tests/k8s_emulator), with
kubespawner measured in the same run as the baseline.

The same request both ways: image quay.io/jupyter/base-notebook, 1 GPU (tainted GPU nodes,
tolerated), a 10Gi home PersistentVolumeClaim. Measured:

1. API requests per spawn, from the emulator's per-(verb, resource) counters. The first
   spawn of a process also starts the shared watches/reflectors. Two rounds over the same N
   users: round 1 (spawns 2..N) is a user's first server (the home claim is new), round 2 is
   the same users coming back (their home claim exists) — the steady state of a running hub.
   Target: gridspawner ≤ kubespawner in the steady state.
2. Latency from the pod's Ready condition (emulator timestamp) to the spawn call returning,
   median. Target ≤ 0.1 s (kubespawner's printed alongside).
3. 300 concurrent gridspawner spawns (pods do not run processes) → target 0 errors.
4. Capacity view over 500 nodes from the node-watch cache, median ≤ 20 ms.

gridspawner is driven through its backend (KubernetesBackend.launch/stop: what
GridSpawner.start/stop delegate to); kubespawner through KubeSpawner.start/stop with a minimal
user/hub (as kubespawner's own tests do). Both run in this process against in-process
emulators (a thread each), so both pay the same GIL sharing.

    python bench/bench_kubernetes.py [--spawns 8] [--concurrent 300] [--nodes 500]

Prints numbers and ratios; exits 0 (1 only if a target is missed and --strict is given).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
# kubespawner loads the default kubeconfig, whose location kubernetes_asyncio reads from
# $KUBECONFIG at import time: fix the path now, the emulator writes the file there later.
_KS_DIR = tempfile.mkdtemp(prefix="bench-k8s-")
KS_KUBECONFIG = os.path.join(_KS_DIR, "kubeconfig")
os.environ["KUBECONFIG"] = KS_KUBECONFIG
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from k8s_emulator import Emulator  # noqa: E402

NS = "default"
IMAGE = "quay.io/jupyter/base-notebook:2025-01-01"
GPU_TAINT = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
FAST = dict(pull_delay=0.005, start_delay=0.005, kill_delay=0.005)


def gpu_nodes(n: int, gpus: int = 8) -> list[dict]:
    return [{"name": f"gpu-{i:03d}", "cpu": "128", "memory": "1Ti", "pods": 250, "gpus": gpus,
             "gpu_product": "NVIDIA-A100-SXM4-80GB" if i % 2 else "NVIDIA-L40S",
             "gpu_memory": 81920 if i % 2 else 46068, "taints": GPU_TAINT} for i in range(n)]


def delta(after: dict, before: dict) -> Counter:
    c = Counter(after)
    c.subtract(before)
    return Counter({k: v for k, v in c.items() if v})


def forget_ready_time(emu: Emulator, pod: str) -> None:
    """The emulator keeps the first Ready time per pod *name*; a user's next server reuses
    the name, so forget it after a stop (else round 2 would measure from round 1's Ready)."""
    emu.call(lambda: emu.cluster.ready_times.pop((NS, pod), None))


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def fmt_counts(c: Counter) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(c.items()))


# ------------------------------------------------------------------ gridspawner
def grid_backend(emu: Emulator, **raw):
    from gridspawner.backends.kubernetes import KubernetesBackend
    from gridspawner.backends.kubernetes.settings import parse_settings

    raw.setdefault("namespace", NS)
    raw.setdefault("kubeconfig", emu.kubeconfig_path)
    raw.setdefault("home_volume", {"size": "10Gi"})
    settings = parse_settings("cluster", raw, "bench")
    return KubernetesBackend("cluster", settings, tolerance=0.07)


def grid_ctx(user: str):
    from gridspawner.backends.base import LaunchContext

    token = "bench-token-0123456789"
    env = {"JUPYTERHUB_API_TOKEN": token, "JPY_API_TOKEN": token, "JUPYTERHUB_USER": user,
           "JUPYTERHUB_SERVICE_PREFIX": f"/user/{user}/", "JUPYTERHUB_API_URL": "http://hub:8081/hub/api"}
    return LaunchContext(user=user, server_name="", slug=user, env=env, cmd=("jupyterhub-singleuser",), args=(),
                         log=logging.getLogger("bench.grid"))


def grid_request():
    from gridspawner.backends.kubernetes.settings import parse_image
    from gridspawner.request import LaunchRequest

    return LaunchRequest(backend="cluster", backend_kind="kubernetes", image="base", gpus=1, gpu_memory=0,
                         image_settings=parse_image("base", {"image": IMAGE}, "bench"))


async def bench_grid_sequential(spawns: int) -> dict:
    with Emulator(gpu_nodes(4), **FAST) as emu:
        backend = grid_backend(emu)
        per_spawn, latencies, per_stop = [], [], []
        try:
            for i in range(2 * spawns):  # round 1: new users; round 2: the same users again
                before = emu.counters()
                launch = await backend.launch(grid_ctx(f"user{i % spawns}"), grid_request())
                t_return = time.time()
                per_spawn.append(delta(emu.counters(), before))
                t_ready = emu.ready_time(NS, launch.state["pod"])
                latencies.append(t_return - t_ready)
                before = emu.counters()
                await backend.stop(launch)
                per_stop.append(delta(emu.counters(), before))
                forget_ready_time(emu, launch.state["pod"])
        finally:
            await backend.close()
        return {"per_spawn": per_spawn, "latencies": latencies, "per_stop": per_stop, "round": spawns,
                "invalid": emu.validation_failures}


async def bench_grid_concurrent(n: int) -> dict:
    nodes = gpu_nodes((n + 7) // 8 + 2)
    with Emulator(nodes, **FAST) as emu:
        backend = grid_backend(emu)
        t0 = time.monotonic()
        try:
            results = await asyncio.gather(*(backend.launch(grid_ctx(f"c{i}"), grid_request()) for i in range(n)),
                                           return_exceptions=True)
            took = time.monotonic() - t0
            errors = [r for r in results if isinstance(r, BaseException)]
            ok = [r for r in results if not isinstance(r, BaseException)]
            counters = emu.counters()
            t1 = time.monotonic()
            stops = await asyncio.gather(*(backend.stop(r) for r in ok), return_exceptions=True)
            stop_took = time.monotonic() - t1
            stop_errors = [s for s in stops if isinstance(s, BaseException)]
        finally:
            await backend.close()
        return {"n": n, "errors": errors, "took": took, "stop_took": stop_took, "stop_errors": stop_errors,
                "counters": counters, "invalid": emu.validation_failures}


async def bench_grid_capacity(nodes: int, samples: int = 50) -> dict:
    with Emulator(gpu_nodes(nodes), **FAST) as emu:
        backend = grid_backend(emu, home_volume=None)
        try:
            t0 = time.perf_counter()
            cap = await backend.probe_capacity()  # starts the node (and pod) watches
            first = time.perf_counter() - t0
            times = []
            for _ in range(samples):
                t = time.perf_counter()
                cap = backend.capacity.snapshot()  # without I/O: the watches run
                cap.summary()
                cap.fits(2, 40, 0.07)
                times.append(time.perf_counter() - t)
            probe_times = []
            for _ in range(10):
                t = time.perf_counter()
                await backend.probe_capacity()
                probe_times.append(time.perf_counter() - t)
        finally:
            await backend.close()
        return {"nodes": nodes, "first": first, "median": median(times), "probe_median": median(probe_times),
                "summary": cap.summary(), "hosts": len(cap.hosts)}


# ------------------------------------------------------------------ kubespawner
def make_kubespawner(emu: Emulator, user: str, uid: int):
    from jupyterhub.objects import Hub, Server
    from kubespawner import KubeSpawner
    from traitlets.config import Config

    c = Config()
    c.KubeSpawner.namespace = NS
    c.KubeSpawner.image = IMAGE
    c.KubeSpawner.extra_resource_limits = {"nvidia.com/gpu": "1"}
    c.KubeSpawner.tolerations = TOLERATIONS
    c.KubeSpawner.storage_pvc_ensure = True
    c.KubeSpawner.storage_capacity = "10Gi"
    c.KubeSpawner.storage_access_modes = ["ReadWriteOnce"]
    c.KubeSpawner.volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}]
    c.KubeSpawner.volume_mounts = [{"name": "home", "mountPath": "/home/jovyan"}]
    c.KubeSpawner.start_timeout = 60
    c.KubeSpawner.http_timeout = 60
    user_obj = SimpleNamespace(name=user, id=uid, url=f"/user/{user}/", escaped_name=user,
                               server=Server(), settings={}, groups=[], orm_user=None)
    hub = Hub(ip="127.0.0.1", port=8081, base_url="/hub/")
    sp = KubeSpawner(config=c, user=user_obj, hub=hub, api_token="bench-token-0123456789",
                     oauth_client_id=f"jupyterhub-user-{user}", _mock=False)
    sp.server = user_obj.server
    return sp


async def bench_kubespawner(spawns: int) -> dict:
    with Emulator(gpu_nodes(4), kubeconfig_path=KS_KUBECONFIG, **FAST) as emu:
        per_spawn, latencies, per_stop, errors = [], [], [], []
        for i in range(2 * spawns):  # round 1: new users; round 2: the same users again
            sp = make_kubespawner(emu, f"kuser{i % spawns}", 1000 + i % spawns)
            before = emu.counters()
            try:
                await sp.start()
            except Exception as e:  # noqa: BLE001 - reported, not fatal to the bench
                errors.append(repr(e))
                continue
            t_return = time.time()
            per_spawn.append(delta(emu.counters(), before))
            t_ready = emu.ready_time(NS, sp.pod_name)
            latencies.append(t_return - t_ready)
            before = emu.counters()
            await sp.stop()
            per_stop.append(delta(emu.counters(), before))
            forget_ready_time(emu, sp.pod_name)
        from kubespawner import KubeSpawner

        for reflector in list(KubeSpawner.reflectors.values()):
            await reflector.stop()
        KubeSpawner.reflectors.clear()
        return {"per_spawn": per_spawn, "latencies": latencies, "per_stop": per_stop, "errors": errors,
                "round": spawns, "invalid": emu.validation_failures}


# ------------------------------------------------------------------ report
def report_sequential(name: str, r: dict) -> tuple[float, float, float]:
    """Prints the numbers; returns (returning-user requests/spawn, new-user requests/spawn, latency)."""
    counts = [sum(c.values()) for c in r["per_spawn"]]
    n = r["round"]
    new_users = counts[1:n] or counts[:1]
    returning = counts[n:] or new_users
    print(f"  {name}: first spawn {counts[0] if counts else 'n/a'} requests ({fmt_counts(r['per_spawn'][0]) if counts else ''})")
    if len(r["per_spawn"]) > 1:
        print(f"  {name}: a new user's spawn (round 1, spawns 2..{n}): median {median(new_users):g} requests "
              f"({fmt_counts(r['per_spawn'][min(n, len(counts)) - 1])})")
        print(f"  {name}: steady state, returning users (round 2): median {median(returning):g} requests/spawn "
              f"({fmt_counts(r['per_spawn'][-1])})")
        print(f"  {name}: stop {median([sum(c.values()) for c in r['per_stop']]):g} requests "
              f"({fmt_counts(r['per_stop'][-1])})")
    lat = r["latencies"]
    print(f"  {name}: Ready → start() returned: median {median(lat) * 1000:.1f} ms, "
          f"max {max(lat) * 1000 if lat else float('nan'):.1f} ms over {len(lat)} spawns")
    if r.get("errors"):
        print(f"  {name}: ERRORS {r['errors'][:3]}")
    if r["invalid"]:
        print(f"  {name}: the emulator REJECTED objects: {[f['message'] for f in r['invalid']][:3]}")
    return median(returning), median(new_users), median(lat)


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spawns", type=int, default=8)
    p.add_argument("--concurrent", type=int, default=300)
    p.add_argument("--nodes", type=int, default=500)
    p.add_argument("--skip-kubespawner", action="store_true")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("traitlets").setLevel(logging.ERROR)  # "Setting Spawner.server ... no orm_spawner"
    missed = []
    try:
        import gridspawner.backends.kubernetes  # noqa: F401
        have_grid = True
    except ImportError as e:
        have_grid = False
        print(f"gridspawner kubernetes backend NOT AVAILABLE ({e}); only the baseline runs")

    print(f"== 1+2. sequential spawns: {a.spawns} users, each twice (1 GPU + home PVC)")
    grid = ks = None
    if have_grid:
        grid = await bench_grid_sequential(a.spawns)
        g_req, g_new, g_lat = report_sequential("gridspawner", grid)
    if not a.skip_kubespawner:
        ks = await bench_kubespawner(a.spawns)
        k_req, k_new, k_lat = report_sequential("kubespawner", ks)
    if grid and ks and ks["per_spawn"]:
        print(f"  requests/spawn ratio gridspawner/kubespawner, steady state: {g_req / k_req:.2f} (target ≤ 1); "
              f"a new user's first spawn: {g_new / k_new:.2f} (gridspawner also writes the token's Secret)")
        print(f"  latency ratio gridspawner/kubespawner: {g_lat / k_lat:.3f}")
        if g_req > k_req:
            missed.append("requests per spawn")
    if grid:
        print(f"  latency target ≤ 100 ms: {'met' if g_lat <= 0.1 else 'MISSED'}")
        if g_lat > 0.1:
            missed.append("latency")
        if grid["invalid"]:
            missed.append("validation")

    if have_grid and a.concurrent:
        print(f"== 3. {a.concurrent} concurrent gridspawner spawns")
        c = await bench_grid_concurrent(a.concurrent)
        print(f"  errors: {len(c['errors'])} (target 0); all ready in {c['took']:.1f} s; "
              f"stopped in {c['stop_took']:.1f} s ({len(c['stop_errors'])} stop errors)")
        for e in c["errors"][:3]:
            print(f"    {type(e).__name__}: {e}")
        total = sum(c["counters"].values())
        print(f"  API requests for {a.concurrent} spawns: {total} ({total / a.concurrent:.2f}/spawn): "
              f"{fmt_counts(Counter(c['counters']))}")
        if c["errors"] or c["invalid"]:
            missed.append("concurrency")

    if have_grid and a.nodes:
        print(f"== 4. capacity view over {a.nodes} nodes")
        cap = await bench_grid_capacity(a.nodes)
        print(f"  first probe (list+watch start) {cap['first'] * 1000:.0f} ms; from cache: median "
              f"{cap['median'] * 1000:.3f} ms (target ≤ 20 ms); probe_capacity() median "
              f"{cap['probe_median'] * 1000:.3f} ms; {cap['hosts']} hosts: {cap['summary']}")
        if max(cap["median"], cap["probe_median"]) > 0.02:
            missed.append("capacity")

    print("== targets missed: " + (", ".join(missed) if missed else "none"))
    return 1 if (missed and a.strict) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
