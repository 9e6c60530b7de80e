"""The slurm backend, measured on the Slurm lab (tests/slurmlab: a real slurmctld + slurmds in
network namespaces, a login node in front of the GPU nodes).

1. Submit-to-ready on an idle cluster: backend-level launch of a real ``jupyter-server`` →
   ``GET /api`` answers 200 through the relay, as a Slurm job on gpu1 (sbatch through the
   login node, the queue, the job's start, the environment delivered, the socket relayed)
   vs the ssh backend launching the same server on the same node (gpu1 through the login
   node as jump host), 1 GPU each. Alternating rounds after one untimed warm-up each (the
   warm-up opens the pooled SSH connections, as a running hub has). Target ratio
   slurm/ssh ≤ 1.3. Both run as root: the server comes from this venv, which lives under
   /root (0700 here), unreadable to the lab's unprivileged account.
2. One poll of each of 100 running jobs (a second lab with one 128-CPU node): the squeue
   calls the cluster saw (a wrapper first on its PATH counts them) and the SSH commands the
   backend ran. Target: 1.

    python bench/bench_slurm.py [--rounds 5] [--jobs 100]

Needs root and scripts/install-slurm-test-deps.sh.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import shlex
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from slurmlab import NodeSpec, SlurmLab, available  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from bench_ssh import get_200  # noqa: E402  (the same readiness check as the ssh bench)

from gridspawner.backends.base import Launch, LaunchContext  # noqa: E402
from gridspawner.backends.slurm import SlurmBackend  # noqa: E402
from gridspawner.backends.ssh import SSHBackend  # noqa: E402
from gridspawner.request import LaunchRequest  # noqa: E402

SERVER = [str(Path(sys.executable).parent / "jupyter-server"), "--no-browser"]
TARGET_SPAWN, TARGET_POLL = 1.3, 1


def ctx(user: str) -> LaunchContext:
    return LaunchContext(
        user=user, server_name="", slug=f"{user}-{hashlib.sha256(user.encode()).hexdigest()[:10]}",
        env={"JUPYTERHUB_API_TOKEN": "bench", "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api"},
        cmd=("jupyterhub-singleuser",), args=(), log=logging.getLogger("bench"),
    )


def req(kind: str, image) -> LaunchRequest:
    return LaunchRequest(backend="b", backend_kind=kind, image="i", gpus=1, gpu_memory=0, image_settings=image,
                         gpu_type="a100" if kind == "slurm" else None)


async def spawn_once(backend, kind: str, image, user: str) -> float:
    t0 = time.perf_counter()
    launch = await backend.launch(ctx(user), req(kind, image))
    await get_200(launch.url)
    took = time.perf_counter() - t0
    await backend.stop(launch, now=True)
    return took


async def bench_spawn(lab: SlurmLab, rounds: int) -> float:
    common = {"client_keys": [str(lab.ssh.client_key)], "known_hosts": str(lab.ssh.known_hosts), "username": "root"}
    tag = os.getpid() % 10000
    slurm = SlurmBackend("b", SlurmBackend.parse_settings("b", {
        **common, "login_hosts": [{"name": "login", "address": lab.login.address}], "partitions": ["gpu"],
        "gpu_types": {"a100": {"memory": 80}}, "session_root": f"/tmp/gbs{tag}-{{account}}", "notebook_dir": "/tmp",
        "pending_interval": 1,
    }, "b"))
    ssh = SSHBackend("b", SSHBackend.parse_settings("b", {
        **common, "hosts": [{"name": "gpu1", "address": lab.compute["gpu1"].address,
                             "jump": {"address": lab.login.address}}],
        "session_root": f"/tmp/gbh{tag}-{{account}}", "notebook_dir": "/tmp", "ledger_dir": f"/tmp/gbl{tag}",
        "start_wait": 30, "kill_timeout": 3,
    }, "b"))
    slurm_img = SlurmBackend.parse_image("i", {"cmd": SERVER}, "i")
    ssh_img = SSHBackend.parse_image("i", {"cmd": SERVER}, "i")
    try:
        cold = {"slurm": await spawn_once(slurm, "slurm", slurm_img, "warm"),
                "ssh": await spawn_once(ssh, "ssh", ssh_img, "warm")}
        times: dict[str, list[float]] = {"ssh": [], "slurm": []}
        for i in range(rounds):
            times["ssh"].append(await spawn_once(ssh, "ssh", ssh_img, f"u{i}"))
            times["slurm"].append(await spawn_once(slurm, "slurm", slurm_img, f"u{i}"))
        sh, sl = statistics.median(times["ssh"]), statistics.median(times["slurm"])
        print(f"submit-to-ready on an idle cluster (jupyter-server, 1 GPU on gpu1, launch → GET /api 200 through "
              f"the relay), {rounds} rounds:")
        print(f"  ssh backend   : median {sh:.3f} s  ({', '.join(f'{t:.2f}' for t in times['ssh'])})"
              f"; first incl. SSH connects {cold['ssh']:.3f} s")
        print(f"  slurm backend : median {sl:.3f} s  ({', '.join(f'{t:.2f}' for t in times['slurm'])})"
              f"; first incl. SSH connects {cold['slurm']:.3f} s")
        print(f"  ratio slurm/ssh = {sl / sh:.2f}  (target ≤ {TARGET_SPAWN})")
        return sl / sh
    finally:
        await slurm.close()
        await ssh.close()
        for d in (f"/tmp/gbs{tag}-root", f"/tmp/gbh{tag}-root", f"/tmp/gbl{tag}"):
            shutil.rmtree(d, ignore_errors=True)


async def bench_poll(n: int) -> int:
    with SlurmLab(nodes=(NodeSpec("cpu1", cpus=max(64, n + 8), memory_mib=131072),), accounting=False,
                  constrain_devices=False) as lab:
        out = lab.run(f"for i in $(seq {n}); do printf '#!/bin/sh\\nexec sleep 600\\n' | sbatch --parsable "
                      "--mem=16M -o /dev/null || exit 1; done", timeout=300)
        assert out.returncode == 0, out.stderr
        ids = [int(x) for x in out.stdout.split()]
        deadline = time.monotonic() + 120
        while sum(1 for s in lab.slurm("squeue", "-h", "-o", "%T").stdout.split() if s == "RUNNING") < n:
            assert time.monotonic() < deadline, "jobs did not all start"
            time.sleep(0.5)
        log = lab.root / "squeue-calls.log"
        log.touch()
        log.chmod(0o666)
        (lab.bin / "squeue").write_text(f"#!/bin/sh\necho \"$*\" >>{shlex.quote(str(log))}\nexec /usr/bin/squeue \"$@\"\n")
        (lab.bin / "squeue").chmod(0o755)
        b = SlurmBackend("p", SlurmBackend.parse_settings("p", {
            "login_hosts": [lab.login.address], "username": lab.user, "client_keys": [str(lab.ssh.client_key)],
            "known_hosts": str(lab.ssh.known_hosts), "poll_interval": 30,
        }, "p"))
        launches = [Launch(url="", state={"job_id": j, "account": lab.user, "node": "cpu1", "session_dir": f"/x/{j}"})
                    for j in ids]
        try:
            await b.board.get(ids[0], 0)  # the login connection, as a running hub has it
            before, calls_before = dict(b.commands), len(log.read_text().splitlines())
            t0 = time.perf_counter()
            results = await asyncio.gather(*(b.poll(launch) for launch in launches))
            took = time.perf_counter() - t0
            assert results == [None] * n, results
            squeues = len(log.read_text().splitlines()) - calls_before
            commands = sum(b.commands.values()) - sum(before.values())
            print(f"one poll of each of {n} running jobs: {squeues} squeue on the cluster, {commands} SSH command(s) "
                  f"by the backend, {took * 1000:.0f} ms  (target {TARGET_POLL})")
            return commands
        finally:
            lab.slurm("scancel", *map(str, ids), check=False)
            await b.close()


async def main(args) -> int:
    reason = available()
    if reason:
        print(f"skipped: {reason}")
        return 0
    with SlurmLab() as lab:
        ratio = await bench_spawn(lab, args.rounds)
    commands = await bench_poll(args.jobs)
    ok = ratio <= TARGET_SPAWN and commands <= TARGET_POLL
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--jobs", type=int, default=100)
    logging.basicConfig(level=logging.WARNING)
    sys.exit(asyncio.run(main(p.parse_args())))
