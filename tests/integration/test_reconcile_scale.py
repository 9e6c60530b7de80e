"""What a look for orphans costs when the hub knows 200 servers (issue 16): on an SSH host, no
SSH connection more than the capacity probes make (it reads their listing of the ledger and
the session directories); on Kubernetes, no list request (it reads the pod watch's cache; at
most one per namespace is allowed). Counts, not timings. One orphan among the 200 is
reclaimed, and nothing of the 200 is touched."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gridspawner.backends.host import ledger, ledger_claim, ledger_hold  # noqa: E402
from gridspawner.backends.host.session_marks import owner_lines  # noqa: E402
from gridspawner.backends.kubernetes import KubernetesBackend  # noqa: E402
from gridspawner.backends.kubernetes.settings import parse_settings  # noqa: E402
from gridspawner.gpu import NVIDIA_SMI_ARGS, parse_nvidia_smi  # noqa: E402
from k8s_emulator import Emulator  # noqa: E402
from sshhosts import available  # noqa: E402
from sshhosts.backend_env import FAKE_SMI, Env, lab_fixture  # noqa: E402

KNOWN = 200
HUB = "hub-scale"

lab = lab_fixture("a")


def sh(script: str) -> subprocess.CompletedProcess:
    r = subprocess.run(["/bin/sh", "-s"], input=script, capture_output=True, text=True, timeout=120,
                       env={"PATH": os.environ["PATH"], "HOME": "/root"})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r


def make_sessions(backend, gpus, session_root: Path, ledger_dir: str, server_pid: int, names: list[str]) -> list[dict]:
    """Sessions as the launch script leaves them (owner mark, pid file naming a server that
    leads its own session, one GPU claim held by that server), made by the real claim
    script and launch-script fragments on this machine (the lab host shares its files)."""
    parts, states = [], []
    for name, gpu in zip(names, gpus):
        session = f"{session_root}/{name}"
        entry = backend._ledger_entry(name)
        parts.append(ledger_claim.claim_script(ledger_dir, entry, [gpu.uuid], session_dir=session, owner="test", user=name,
                                         grace=120, shared=False, hub=HUB, backend=backend.name))
        states.append({"host": "a", "session_dir": session, "pid": server_pid, "socket": f"{session}/jupyter.sock",
                       "relay_port": 0, "ledger_dir": ledger_dir})
    out = sh("".join(parts)).stdout
    claims = [line.split()[1:] for line in out.splitlines() if line.startswith("@@claimed")]
    body = [f"umask 077\nmkdir -p {session_root}\n"]
    for name, files in zip(names, claims):
        body.append(f"S={session_root}/{name}\nmkdir -m 700 \"$S\"\n{owner_lines(HUB, backend.name)}"
                    f"echo {server_pid} >\"$S/pid\"\npid={server_pid}\n{ledger_hold.hold_lines(ledger_dir, files)}")
        states[names.index(name)]["ledger_claims"] = files
    sh("".join(body))
    return states


@pytest.mark.slow
@pytest.mark.skipif(available() is not None, reason=available() or "")
async def test_200_known_servers_cost_no_ssh_connection(lab):
    env = Env(lab, Path(tempfile.mkdtemp(prefix="gsscale-")))
    smi = ["env", "FAKE_NVIDIA_SMI_SEED=scale", f"FAKE_NVIDIA_SMI_GPUS={';'.join(['Tesla T4,15360'] * (KNOWN + 1))}",
           FAKE_SMI]
    backend = env.backend(hosts=[env.host("a", nvidia_smi=smi)])
    backend.hub_id = HUB
    server = subprocess.Popen(["setsid", "sleep", "600"])  # leads its own session, as a server does
    orphan = subprocess.Popen(["setsid", "sleep", "600"])
    root = Path(env.session_dir("x")).parent
    ledger_dir = str(env.root / "ledger")
    names = [f"user{i:03d}-0123456789" for i in range(KNOWN + 1)]
    scripts_run: list[str] = []
    run = backend._run

    async def counting(host, script, what, timeout=None):
        scripts_run.append(what)
        return await run(host, script, what, timeout)

    backend._run = counting
    try:
        gpus = parse_nvidia_smi(subprocess.run([*smi, *NVIDIA_SMI_ARGS], capture_output=True, text=True).stdout)
        known = make_sessions(backend, gpus[:KNOWN], root, ledger_dir, server.pid, names[:KNOWN])
        # the hub's capacity loop probes every host anyway; a look right after costs nothing
        assert (await backend.probe_capacity()).hosts[0].reachable
        before, scripts_run[:] = backend.handshakes, []
        report = await backend.reconcile(lambda: known, 0, probe_max_age=60)
        assert (scripts_run, report.reclaimed, report.errors, backend.handshakes - before) == ([], [], [], 0)

        make_sessions(backend, gpus[KNOWN:], root, ledger_dir, orphan.pid, names[KNOWN:])
        await backend.probe_capacity()
        before, scripts_run[:] = backend.handshakes, []
        report = await backend.reconcile(lambda: known, 0, probe_max_age=60)
        print(f"\nreconciling {KNOWN} known servers + 1 orphan on an SSH host: "
              f"{backend.handshakes - before} new SSH connections, scripts run: {scripts_run}")
        assert backend.handshakes - before == 0
        # the orphan's host is looked at once more before anything is decided, then the orphan reclaimed
        assert scripts_run == ["probing GPUs", "reclaiming an orphaned session"], scripts_run
        assert len(report.reclaimed) == 1 and names[KNOWN] in report.reclaimed[0], report
        assert report.freed_claims == 1 and not report.errors
        deadline = time.monotonic() + 10
        while orphan.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert orphan.poll() is not None and server.poll() is None
        assert sorted(p.name for p in root.iterdir()) == names[:KNOWN]
        assert len(env.ledger()) == KNOWN
    finally:
        for p in (server, orphan):
            p.kill()
            p.wait()
        shutil.rmtree(root, ignore_errors=True)
        for b in env.backends:
            await b.close()
        shutil.rmtree(env.root, ignore_errors=True)


async def test_200_known_pods_cost_no_list_request():
    nodes = [{"name": f"cpu-{i}", "cpu": "1000", "memory": "4000Gi", "pods": 500} for i in range(2)]
    with Emulator(nodes) as emu:
        settings = parse_settings("cluster", {"namespace": "default", "kubeconfig": emu.kubeconfig_path}, "k")
        backend = KubernetesBackend("cluster", settings)  # requests carry their image (test_k8s_backend.request)
        backend.hub_id = HUB
        try:
            from test_k8s_backend import context, request

            launches = await asyncio.gather(*(backend.launch(context(f"user{i:03d}"), request())
                                              for i in range(KNOWN + 1)))
            known = [launch.state for launch in launches[:KNOWN]]
            orphan = launches[KNOWN].state["pod"]
            emu.reset_counters()
            report = await backend.reconcile(lambda: known, 0)
            counts = emu.counters()
            lists = sum(n for k, n in counts.items() if k.startswith("list "))
            print(f"\nreconciling {KNOWN} known pods + 1 orphan: {lists} list requests ({counts})")
            assert lists <= 1 and lists == 0, counts
            assert [line.split()[1] for line in report.reclaimed] == [orphan], report
            assert counts.get("delete pods") == 1, counts
            emu.wait_for(lambda: len(emu.list("pods", "default")) == KNOWN, timeout=10)
            assert sorted(p["metadata"]["name"] for p in emu.list("pods", "default")) == sorted(s["pod"] for s in known)
            assert len(emu.list("secrets", "default")) == KNOWN
        finally:
            await backend.close()
