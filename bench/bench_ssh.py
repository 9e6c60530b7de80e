"""The ssh backend, measured against sshd hosts in network namespaces (tests/sshhosts).

1. Spawn-to-ready: backend-level launch of a real ``jupyter-server`` → ``GET /api`` answers
   200 through the relay, on an SSH host vs the local backend (same scripts, same server,
   same fake GPU inventory, 1 GPU each). Alternating rounds after one untimed warm-up each
   (the warm-up opens the pooled SSH connection, as a running hub has). Target ratio
   ssh/local ≤ 1.3.
2. Background capacity probe of 20 hosts vs 1 host (pooled connections, probes concurrent).
   Target ratio ≤ 2. The 20 "hosts" share this machine's CPUs, so the nvidia-smi stand-in
   costs no CPU: it waits 0.2 s (the real tool mostly waits on the driver) and prints a
   4-GPU inventory. A second run with an instant stand-in shows what is left: each host's
   sshd session and probe script, all on the same 2 cores (informational).
3. One poll of each of 100 running servers (on 2 hosts): SSH handshakes made by the pool
   during the polls (target 0) and the wall time.

    python bench/bench_ssh.py [--rounds 5] [--hosts 20] [--servers 100]

Needs root, iproute2 and openssh-server (scripts/install-ssh-test-deps.sh).
"""

from __future__ import annotations

import argparse
import asyncio
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

from sshhosts import SSHLab, available  # noqa: E402

from gridspawner.backends.base import LaunchContext  # noqa: E402
from gridspawner.backends.local import LocalBackend  # noqa: E402
from gridspawner.backends.ssh import SSHBackend  # noqa: E402
from gridspawner.request import LaunchRequest  # noqa: E402

FAKE_SMI = str(ROOT / "tests" / "fixtures" / "fake_nvidia_smi")
GPUS = "Tesla T4,15360;NVIDIA A10,23028;NVIDIA A100-SXM4-40GB,40960;NVIDIA A100-SXM4-80GB,81920"
SERVER = [str(Path(sys.executable).parent / "jupyter-server"), "--no-browser"]
TARGET_SPAWN, TARGET_PROBE = 1.3, 2.0


def ctx(user: str) -> LaunchContext:
    return LaunchContext(
        user=user, server_name="", slug=f"{user}-{hashlib.sha256(user.encode()).hexdigest()[:10]}",
        env={"JUPYTERHUB_API_TOKEN": "bench", "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api"},
        cmd=("jupyterhub-singleuser",), args=(), log=logging.getLogger("bench"),
    )


def req(kind: str, image, gpus: int = 1) -> LaunchRequest:
    return LaunchRequest(backend="b", backend_kind=kind, image="i", gpus=gpus, gpu_memory=0, image_settings=image)


async def get_200(url: str, path: str = "/api", timeout: float = 60) -> None:
    host, port = url.removeprefix("http://").split(":")
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            r, w = await asyncio.open_connection(host, int(port))
            w.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
            data = await asyncio.wait_for(r.read(), 10)
            w.close()
            if data.startswith(b"HTTP/1.") and data.split()[1] == b"200":
                return
        except (OSError, asyncio.TimeoutError):
            pass
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{url}{path} did not answer 200")


async def spawn_once(backend, kind: str, image, user: str) -> float:
    t0 = time.perf_counter()
    launch = await backend.launch(ctx(user), req(kind, image))
    await get_200(launch.url)
    took = time.perf_counter() - t0
    await backend.stop(launch, now=True)
    return took


async def bench_spawn(lab: SSHLab, tmp: Path, rounds: int) -> tuple[float, float]:
    host = lab.add_host("spawn")
    common = {
        "ledger_dir": str(tmp / "ledger"), "notebook_dir": str(tmp / "nb" / "{username}"),
        "nvidia_smi": ["env", f"FAKE_NVIDIA_SMI_GPUS={GPUS}", FAKE_SMI], "start_wait": 30, "kill_timeout": 3,
    }
    local = LocalBackend("b", LocalBackend.parse_settings("b", {**common, "session_root": str(tmp / "l")}, "b"))
    ssh = SSHBackend("b", SSHBackend.parse_settings("b", {
        **common, "session_root": f"/tmp/gsb{os.getpid() % 10000}-{{account}}",
        "hosts": [{"name": "spawn", "address": host.address}], "username": "root",
        "client_keys": [str(lab.client_key)], "known_hosts": str(lab.known_hosts),
    }, "b"))
    local_img = LocalBackend.parse_image("i", {"cmd": SERVER}, "i")
    ssh_img = SSHBackend.parse_image("i", {"cmd": SERVER}, "i")
    try:
        cold_ssh = await spawn_once(ssh, "ssh", ssh_img, "warm")  # opens the pooled connection
        await spawn_once(local, "local", local_img, "warm")
        times: dict[str, list[float]] = {"local": [], "ssh": []}
        for i in range(rounds):
            times["local"].append(await spawn_once(local, "local", local_img, f"u{i}"))
            times["ssh"].append(await spawn_once(ssh, "ssh", ssh_img, f"u{i}"))
        lo, sh = statistics.median(times["local"]), statistics.median(times["ssh"])
        print(f"spawn-to-ready (jupyter-server, 1 GPU, launch → GET /api 200 through the relay), {rounds} rounds:")
        print(f"  local backend : median {lo:.3f} s  ({', '.join(f'{t:.2f}' for t in times['local'])})")
        print(f"  ssh backend   : median {sh:.3f} s  ({', '.join(f'{t:.2f}' for t in times['ssh'])})"
              f"; first spawn incl. SSH connect {cold_ssh:.3f} s")
        print(f"  ratio ssh/local = {sh / lo:.2f}  (target ≤ {TARGET_SPAWN})")
        return lo, sh
    finally:
        await local.close()
        await ssh.close()
        shutil.rmtree(f"/tmp/gsb{os.getpid() % 10000}-root", ignore_errors=True)


async def bench_probe(lab: SSHLab, tmp: Path, n: int) -> float:
    names = [f"p{i}" for i in range(n)]
    for name in names:
        lab.add_host(name)
    inv = tmp / "smi.csv"
    inv.write_text("".join(f"{i}, GPU-{i:08d}-0000-0000-0000-000000000000, Tesla T4, 15360, 0\n" for i in range(4)))

    def stand_in(delay: float) -> list[str]:
        # the real nvidia-smi mostly waits on the driver (tens to hundreds of ms); ``delay``
        # models that wait without burning the CPUs all lab hosts share
        path = tmp / f"smi-{delay}.sh"
        path.write_text(f"#!/bin/sh\n{'sleep ' + str(delay) if delay else ':'}\nexec cat {inv}\n")
        path.chmod(0o755)
        return [str(path)]

    def backend(hosts, smi):
        return SSHBackend("p", SSHBackend.parse_settings("p", {
            "hosts": [{"name": h, "address": lab.hosts[h].address} for h in hosts], "username": "root",
            "client_keys": [str(lab.client_key)], "known_hosts": str(lab.known_hosts), "nvidia_smi": smi,
            "ledger_dir": str(tmp / "pledger"), "session_root": "/tmp/gsp-{account}",
        }, "p"))

    ratios = {}
    for delay in (0.2, 0.0):
        one, many = backend(names[:1], stand_in(delay)), backend(names, stand_in(delay))
        try:
            results = {}
            for label, b in (("1 host", one), (f"{n} hosts", many)):
                t0 = time.perf_counter()
                cap = await b.probe_capacity()
                cold = time.perf_counter() - t0
                assert all(h.reachable for h in cap.hosts), [h.error for h in cap.hosts if h.error]
                warm = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    await b.probe_capacity()
                    warm.append(time.perf_counter() - t0)
                results[label] = (cold, statistics.median(warm), cap.summary())
            what = f"nvidia-smi answering in {delay:g} s" if delay else "an instant nvidia-smi (host CPU only)"
            print(f"background capacity probe, {what} (pooled connections; median of 5 after the first):")
            for label, (cold, warm, summary) in results.items():
                print(f"  {label:>9}: {warm * 1000:7.1f} ms  (first, with SSH connects: {cold * 1000:.1f} ms)  → {summary}")
            ratios[delay] = results[f"{n} hosts"][1] / results["1 host"][1]
            print(f"  ratio {n}/1 = {ratios[delay]:.2f}"
                  + (f"  (target ≤ {TARGET_PROBE})" if delay else
                     "  (informational: the sshd sessions of all 20 'hosts' share this machine's CPUs)"))
        finally:
            await one.close()
            await many.close()
    return ratios[0.2]


async def bench_poll(lab: SSHLab, tmp: Path, servers: int) -> int:
    hosts = ["q0", "q1"]
    for h in hosts:
        lab.add_host(h)
    root = f"/tmp/gsq{os.getpid() % 10000}-{{account}}"
    b = SSHBackend("q", SSHBackend.parse_settings("q", {
        "hosts": [{"name": h, "address": lab.hosts[h].address} for h in hosts], "username": "root",
        "client_keys": [str(lab.client_key)], "known_hosts": str(lab.known_hosts), "nvidia_smi": ["true"],
        "ledger_dir": str(tmp / "qledger"), "session_root": root, "notebook_dir": str(tmp / "qnb"),
        "start_wait": 0, "kill_timeout": 2, "allow_host_choice": True,
    }, "q"))
    image = SSHBackend.parse_image("i", {"cmd": ["/bin/sh", "-c", "exec sleep 3600", "sh"]}, "i")
    launches = []
    try:
        sem = asyncio.Semaphore(10)

        async def start(i: int):
            async with sem:
                # half on each host (a request naming its host, as allow_host_choice permits)
                r = SimpleNamespace(backend="q", image="i", gpus=0, gpu_memory=0, image_settings=image,
                                    host=hosts[i % 2])
                return await b.launch(ctx(f"s{i}"), r)

        t0 = time.perf_counter()
        launches = await asyncio.gather(*(start(i) for i in range(servers)))
        started = time.perf_counter() - t0
        before = b.handshakes
        t0 = time.perf_counter()
        results = await asyncio.gather(*(b.poll(l) for l in launches))
        took = time.perf_counter() - t0
        new = b.handshakes - before
        assert results == [None] * servers, results
        print(f"poll of {servers} running servers (started in {started:.1f} s): {took:.2f} s wall, "
              f"{new} new SSH handshakes (target 0; {b.handshakes} connections made in all, "
              f"{len(b.pool.transports())} pooled)")
        return new
    finally:
        await asyncio.gather(*(b.stop(l, now=True) for l in launches), return_exceptions=True)
        await b.close()
        shutil.rmtree(root.replace("{account}", "root"), ignore_errors=True)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--servers", type=int, default=100)
    args = parser.parse_args()
    reason = available()
    if reason:
        print(f"bench_ssh: skipped: {reason}")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="gsbench-"))
    try:
        with SSHLab() as lab:
            lo, sh = await bench_spawn(lab, tmp, args.rounds)
            ratio = await bench_probe(lab, tmp, args.hosts)
            new = await bench_poll(lab, tmp, args.servers)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ok = sh / lo <= TARGET_SPAWN and ratio <= TARGET_PROBE and new == 0
    print(f"summary: spawn ratio {sh / lo:.2f} (≤ {TARGET_SPAWN}), probe ratio {ratio:.2f} (≤ {TARGET_PROBE}), "
          f"poll handshakes {new} (= 0): {'all targets met' if ok else 'TARGET MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
