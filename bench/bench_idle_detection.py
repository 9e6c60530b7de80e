"""What idle detection costs on SSH hosts: 200 GPU servers on 20 sshd hosts (tests/sshhosts).

The claim (docs/admin/usage.md, issue 11): idle detection adds no SSH connection and no
command, because each server's GPU use is read by the capacity probe the hub runs anyway
(`backends/host/gpu_use.py`: the per-process nvidia-smi query rides on the probe's command)
and the idle decision (`usage/enforcer.py:cull_idle`) only reads what that probe saw.

Set-up: 20 hosts (network namespaces, each with its own sshd), each with a fake nvidia-smi of
10 GPUs and per-process use (tests/fixtures/fake_nvidia_smi: INVENTORY.apps); 200 servers
launched through the backend's real launch script (a ``sleep`` stands in for Jupyter, one GPU
each from the host's ledger). A third of them keep their GPU busy (their process at 90 % in
nvidia-smi's per-process view), a third had Jupyter activity just now, a third have been
idle for 55 min of a 60 min timeout (inside the warning window: they are told once).

A *round* is what a hub does periodically: a capacity probe of every host, one poll of each
server, and one round of the usage watch (`enforcer.tick`: records, quotas, idle). Rounds
run with idle detection off (``idle_timeout = 0``) and on (60 min), on the same servers and
the same pooled connections. Counted at the asyncssh boundary (a wrapper around
``asyncssh.connect`` for connections and ``SSHClientConnection.create_session`` for
commands: every command the backend runs opens one session), per host, per round; the pool's
own handshake counter is printed beside it.

    python bench/bench_idle_detection.py [--hosts 20] [--servers 200] [--rounds 3]

Needs root, iproute2 and openssh-server (scripts/install-ssh-test-deps.sh). About 1-3
minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import hashlib
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import asyncssh  # noqa: E402

from sshhosts import SSHLab, available  # noqa: E402

from gridspawner.backends.base import LaunchContext  # noqa: E402
from gridspawner.backends.ssh import SSHBackend  # noqa: E402
from gridspawner.usage.config import build_usage_config  # noqa: E402
from gridspawner.usage.enforcer import tick  # noqa: E402
from gridspawner.usage.idle import IdlePolicy  # noqa: E402
from gridspawner.usage.runtime import UsageRuntime  # noqa: E402
from gridspawner.usage.spawner_usage import SpawnerUsage  # noqa: E402

FAKE_SMI = str(ROOT / "tests" / "fixtures" / "fake_nvidia_smi")
GPUS_PER_HOST = 10
IDLE_TIMEOUT = 3600.0
log = logging.getLogger("bench")


class Counts:
    """Connections opened and sessions (commands) started, per host, at the asyncssh boundary."""

    def __init__(self, address_to_host: dict[str, str]):
        self.hosts = address_to_host
        self.connections: collections.Counter = collections.Counter()
        self.commands: collections.Counter = collections.Counter()
        self._connect = asyncssh.connect
        self._session = asyncssh.SSHClientConnection.create_session

    def install(self) -> None:
        counts, connect, session = self, self._connect, self._session

        async def counting_connect(host, *args, **kwargs):
            counts.connections[counts.hosts.get(str(host), str(host))] += 1
            return await connect(host, *args, **kwargs)

        async def counting_session(conn, *args, **kwargs):
            peer = (conn.get_extra_info("peername") or ("?",))[0]
            counts.commands[counts.hosts.get(str(peer), str(peer))] += 1
            return await session(conn, *args, **kwargs)

        asyncssh.connect = counting_connect
        asyncssh.SSHClientConnection.create_session = counting_session

    def uninstall(self) -> None:
        asyncssh.connect = self._connect
        asyncssh.SSHClientConnection.create_session = self._session

    def take(self) -> tuple[collections.Counter, collections.Counter]:
        out = (self.connections, self.commands)
        self.connections, self.commands = collections.Counter(), collections.Counter()
        return out


class BenchSpawner(SpawnerUsage):
    """What the usage watch reads of a spawner, with GridSpawner's own usage methods
    (`SpawnerUsage`: `_announce_stops` → `Backend.announce_stops`); no JupyterHub."""

    def __init__(self, backend: SSHBackend, launch, user: str, last_activity: float):
        super().__init__()
        self._b, self._launch, self.name, self.user = backend, launch, "", None
        self._log_name, self._backend_name = f"{user}'s server", backend.name
        self.capacity_refresh_interval = 15.0
        from datetime import datetime, timezone

        self.orm_spawner = SimpleNamespace(last_activity=datetime.fromtimestamp(last_activity, timezone.utc))
        self.stopped: str | None = None

    @property
    def log(self):
        return log

    def _backend(self) -> SSHBackend:
        return self._b

    async def _ensure_attached(self):
        return self._launch

    def _groups(self) -> list[str]:
        return []

    async def _stop_by_hub(self, reason: str) -> None:
        self.stopped = reason  # never due here: the bench's servers are warned, not stopped


def ctx(user: str) -> LaunchContext:
    return LaunchContext(
        user=user, server_name="", slug=f"{user}-{hashlib.sha256(user.encode()).hexdigest()[:10]}",
        env={"JUPYTERHUB_API_TOKEN": "bench", "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api"},
        cmd=("jupyterhub-singleuser",), args=(), log=logging.getLogger("bench"),
    )


def record_values(user: str, launch, started_at: float) -> dict:
    return {"kind": "server", "run_id": None, "username": user, "server_name": "", "backend": "idle",
            "backend_kind": "ssh", "host": launch.state["host"], "gpus": 1, "gpu_model": "Tesla T4",
            "gpu_memory_gb": 16, "cpu": None, "memory_gb": None, "image": "i", "profile": "",
            "price_per_hour": 0.0, "currency": "", "started_at": started_at, "last_seen_at": started_at}


async def one_round(backend: SSHBackend, launches: list, runtime: UsageRuntime, counts: Counts) -> dict:
    """Probe, poll, usage watch: counts per host and the time of each part."""
    counts.take()
    handshakes = backend.handshakes
    t0 = time.perf_counter()
    cap = await backend.probe_capacity()
    assert all(h.reachable for h in cap.hosts), [h.error for h in cap.hosts if h.error]
    t1 = time.perf_counter()
    polled = await asyncio.gather(*(backend.poll(launch) for launch in launches))
    assert polled == [None] * len(launches), polled
    t2 = time.perf_counter()
    await tick(runtime, time.time())
    t3 = time.perf_counter()
    connections, commands = counts.take()
    return {"connections": connections, "commands": commands, "handshakes": backend.handshakes - handshakes,
            "probe": t1 - t0, "poll": t2 - t1, "watch": t3 - t2}


def per_host(counter: collections.Counter, hosts: list[str]) -> list[int]:
    return [counter.get(h, 0) for h in hosts]


def describe(label: str, rounds: list[dict], hosts: list[str]) -> tuple[float, float]:
    conns = [statistics.mean(per_host(r["connections"], hosts)) for r in rounds]
    cmds = [statistics.mean(per_host(r["commands"], hosts)) for r in rounds]
    spread = sorted({c for r in rounds for c in per_host(r["commands"], hosts)})
    print(f"  {label}:")
    for i, r in enumerate(rounds, 1):
        print(f"    round {i}: per host {conns[i - 1]:.2f} connections, {cmds[i - 1]:.2f} commands "
              f"(min..max {min(per_host(r['commands'], hosts))}..{max(per_host(r['commands'], hosts))}); "
              f"pool handshakes {r['handshakes']}; probe {r['probe'] * 1000:.0f} ms, polls {r['poll'] * 1000:.0f} ms, "
              f"usage watch {r['watch'] * 1000:.0f} ms")
    print(f"    per-host command counts seen: {spread}")
    return statistics.mean(conns), statistics.mean(cmds)


async def bench(lab: SSHLab, tmp: Path, n_hosts: int, n_servers: int, n_rounds: int) -> bool:
    hosts = [f"i{i}" for i in range(n_hosts)]
    entries = []
    inventories = {}
    for i, h in enumerate(hosts):
        lab.add_host(h)
        inv = tmp / f"gpus-{h}.csv"
        inv.write_text("".join(f"Tesla T4,15360,0,GPU-{i:04d}{g:04d}-0000-4000-8000-000000000000\n"
                               for g in range(GPUS_PER_HOST)))
        inventories[h] = inv
        entries.append({"name": h, "address": lab.hosts[h].address,
                        "nvidia_smi": ["env", f"FAKE_NVIDIA_SMI_GPUS={inv}", FAKE_SMI]})
    root = f"/tmp/gsi{os.getpid() % 10000}-{{account}}"
    backend = SSHBackend("idle", SSHBackend.parse_settings("idle", {
        "hosts": entries, "username": "root", "client_keys": [str(lab.client_key)],
        "known_hosts": str(lab.known_hosts), "ledger_dir": str(tmp / "ledger"), "session_root": root,
        "notebook_dir": str(tmp / "nb"), "start_wait": 0, "kill_timeout": 2, "allow_host_choice": True,
    }, "idle"))
    image = SSHBackend.parse_image("i", {"cmd": ["/bin/sh", "-c", "exec sleep 3600", "sh"]}, "i")
    counts = Counts({lab.hosts[h].address: h for h in hosts})
    launches: list = []
    runtime = None
    try:
        await backend.probe_capacity()  # the hub's capacity loop: placement needs a probe
        sem = asyncio.Semaphore(10)

        async def start(i: int):
            async with sem:
                r = SimpleNamespace(backend="idle", image="i", gpus=1, gpu_memory=0, image_settings=image,
                                    host=hosts[i % n_hosts], gpu_type=None, cpu=None, memory=None, mounts=())
                return await backend.launch(ctx(f"u{i:03d}"), r)

        t0 = time.perf_counter()
        launches = list(await asyncio.gather(*(start(i) for i in range(n_servers))))
        print(f"{n_servers} servers (1 GPU each) launched on {n_hosts} hosts in {time.perf_counter() - t0:.1f} s")

        # a third busy on their GPU (their own process at 90 %), a third active, a third idle
        now = time.time()
        busy = {i for i in range(n_servers) if i % 3 == 0}
        idle = {i for i in range(n_servers) if i % 3 == 2}
        apps: dict[str, list[str]] = collections.defaultdict(list)
        for i in busy:
            st = launches[i].state
            apps[st["host"]].append(f"{launches[i].gpus[0].uuid}, {st['pid']}, 3000, 90\n")
        for h in hosts:
            Path(f"{inventories[h]}.apps").write_text("".join(apps[h]))

        config = build_usage_config(usage_db_url=f"sqlite:///{tmp}/usage.sqlite", idle_timeout=IDLE_TIMEOUT,
                                    quota_check_interval=3600)
        runtime = UsageRuntime(config, config.db_url)
        runtime.upgrade_now()
        spawners = []
        for i, launch in enumerate(launches):
            started = now - (IDLE_TIMEOUT - 300 if i in idle else 60)
            sp = BenchSpawner(backend, launch, f"u{i:03d}", started if i in idle else now)
            sp._usage.record_id = await runtime.open_server(sp, record_values(f"u{i:03d}", launch, started), [])
            spawners.append(sp)
        on_config, off_config = config, dataclasses.replace(config, idle=IdlePolicy())

        counts.install()
        runtime.config = off_config
        await one_round(backend, launches, runtime, counts)  # warm-up: every pooled connection open
        off = [await one_round(backend, launches, runtime, counts) for _ in range(n_rounds)]
        runtime.config = on_config
        on = [await one_round(backend, launches, runtime, counts) for _ in range(n_rounds)]
        counts.uninstall()

        warned = [i for i, sp in enumerate(spawners) if "idle" in sp._usage.planned]
        decisions = {"busy (GPU use)": sum(1 for i in busy if spawners[i]._usage.idle.gpus_busy_at),
                     "warned (idle)": len(warned)}
        assert sorted(warned) == sorted(idle), (sorted(warned)[:10], sorted(idle)[:10])
        assert not any(sp.stopped for sp in spawners)
        # the warned servers were told through their stops file (hosts share this filesystem)
        told = [i for i in warned if '"reason":"idle"' in Path(launches[i].state["session_dir"], "stops.json").read_text()]
        assert told == warned, (told, warned)

        print(f"one round = capacity probe of {n_hosts} hosts + a poll of each of {n_servers} servers + the usage watch; "
              f"{n_rounds} rounds each, after one warm-up round (connections pooled)")
        off_conn, off_cmd = describe("idle detection OFF (idle_timeout = 0)", off, hosts)
        on_conn, on_cmd = describe(f"idle detection ON (idle_timeout = {IDLE_TIMEOUT:g} s, warning 600 s)", on, hosts)
        steady = on[1:] or on
        steady_conn = statistics.mean(statistics.mean(per_host(r["connections"], hosts)) for r in steady)
        steady_cmd = statistics.mean(statistics.mean(per_host(r["commands"], hosts)) for r in steady)
        first_extra = sum(on[0]["commands"].values()) - statistics.mean(sum(r["commands"].values()) for r in off)
        print(f"  idle decisions (through enforcer.cull_idle): {decisions} of {n_servers} servers")
        print(f"  per host per round, ON vs OFF: connections {steady_conn:.2f} vs {off_conn:.2f} "
              f"(extra {steady_conn - off_conn:+.2f}), commands {steady_cmd:.2f} vs {off_cmd:.2f} "
              f"(extra {steady_cmd - off_cmd:+.2f}, ratio {steady_cmd / off_cmd:.3f})  (target: 0 extra)")
        print(f"  the first ON round also told {len(warned)} idle servers of their planned stop: "
              f"{first_extra:+.0f} commands in all (one stops-file write each, once per change; not detection)")
        print(f"  one usage-watch round with idle detection for {n_servers} servers: "
              f"median {statistics.median(r['watch'] for r in steady) * 1000:.0f} ms "
              f"(OFF: {statistics.median(r['watch'] for r in off) * 1000:.0f} ms); whole round "
              f"median {statistics.median(r['probe'] + r['poll'] + r['watch'] for r in steady):.2f} s")
        ok = steady_conn - off_conn == 0 and steady_cmd - off_cmd == 0 and all(r["handshakes"] == 0 for r in off + on)
        print(f"summary: idle detection adds {steady_conn - off_conn:+.2f} connections and {steady_cmd - off_cmd:+.2f} "
              f"commands per host per round: {'target met' if ok else 'TARGET MISSED'}")
        return ok
    finally:
        counts.uninstall()
        if runtime is not None and runtime._watch is not None:
            runtime._watch.cancel()
        await asyncio.gather(*(backend.stop(launch, now=True) for launch in launches), return_exceptions=True)
        await backend.close()
        shutil.rmtree(root.replace("{account}", "root"), ignore_errors=True)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--servers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    reason = available()
    if reason:
        print(f"bench_idle_detection: skipped: {reason}")
        return 0
    assert args.servers <= args.hosts * GPUS_PER_HOST, "one GPU per server: at most 10 servers per host"
    tmp = Path(tempfile.mkdtemp(prefix="gsidle-"))
    try:
        with SSHLab() as lab:
            await bench(lab, tmp, args.hosts, args.servers, args.rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
