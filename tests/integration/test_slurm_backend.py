"""The Slurm backend (``kind: slurm``) against a real Slurm cluster (tests/slurmlab), without a
hub: one squeue per poll round however many servers, the queue wait bound (the job is then
cancelled), minimum VRAM mapped to a GPU type, capacity from sinfo, a pending reason that
never clears failing at once, a node failure reported with Slurm's reason.

Commands are counted on the cluster itself: a ``squeue`` wrapper first on the nodes' PATH
logs each call before running the real one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slurmlab import NodeSpec, SlurmLab, available  # noqa: E402

from gridspawner.backends.base import BackendError, Launch, LaunchContext, NoCapacity  # noqa: E402
from gridspawner.backends.slurm import SlurmBackend  # noqa: E402
from gridspawner.request import LaunchRequest  # noqa: E402

pytestmark = pytest.mark.skipif(available() is not None, reason=available() or "")

KEY = "c.GridSpawner.backends['hpc']"


SESSION_ROOTS = f"/tmp/gsb{os.getpid() % 100000}-"


@pytest.fixture(scope="module", autouse=True)
def remove_session_roots():
    """The session roots the jobs made on the (shared) filesystem; each job removed its own
    session directory, the test checks that where it matters."""
    yield
    for root in Path("/tmp").glob(Path(SESSION_ROOTS).name + "*"):
        shutil.rmtree(root, ignore_errors=True)


def settings(lab: SlurmLab, **overrides) -> dict:
    raw = {
        "login_hosts": [{"name": "login", "address": lab.login.address}],
        "username": lab.user,
        "client_keys": [str(lab.ssh.client_key)],
        "known_hosts": str(lab.ssh.known_hosts),
        "partitions": ["gpu", "debug"],
        "gpu_types": {"a100": {"memory": 80, "display_name": "A100 80 GB"}, "t4": {"memory": 16, "display_name": "T4 16 GB"}},
        "queue_wait": 60,
        "pending_interval": 0.3,
        "poll_interval": 5,
        "session_root": SESSION_ROOTS + "{account}",
        "connect_timeout": 5,
    }
    raw.update(overrides)
    return raw


def backend(lab: SlurmLab, **overrides) -> SlurmBackend:
    return SlurmBackend("hpc", SlurmBackend.parse_settings("hpc", settings(lab, **overrides), KEY))


def request(gpus=0, gpu_memory=0, gpu_type=None, **kw) -> LaunchRequest:
    return LaunchRequest(backend="hpc", backend_kind="slurm", image="tiny", gpus=gpus, gpu_memory=gpu_memory,
                         gpu_type=gpu_type, **kw)


def context(lab: SlurmLab, slug: str, messages: list | None = None) -> LaunchContext:
    return LaunchContext(
        user="alice", server_name="", slug=slug,
        env={"JUPYTERHUB_API_TOKEN": "t0ken-not-for-logs"},
        cmd=("python3", str(lab.bin / "host_sock_server.py")), args=(),
        log=logging.getLogger("test"), progress=(messages.append if messages is not None else (lambda m: None)),
    )


def install_squeue_counter(lab: SlurmLab) -> Path:
    """A ``squeue`` first on the lab's PATH that logs each call, then runs the real one."""
    log = lab.root / "squeue-calls.log"
    log.touch()
    log.chmod(0o666)
    wrapper = lab.bin / "squeue"
    wrapper.write_text(f"#!/bin/sh\necho \"$*\" >>{shlex.quote(str(log))}\nexec /usr/bin/squeue \"$@\"\n")
    wrapper.chmod(0o755)
    return log


def calls(log: Path) -> int:
    return len(log.read_text().splitlines())


@pytest.fixture(scope="module")
def wide_lab():
    """A second cluster with one 64-CPU node: room for 50 jobs running at once."""
    with SlurmLab(nodes=(NodeSpec("cpu1", cpus=64, memory_mib=65536),), accounting=False, constrain_devices=False) as lab:
        yield lab


async def test_poll_of_50_running_jobs_costs_one_squeue(wide_lab):
    lab = wide_lab
    out = lab.run("for i in $(seq 50); do printf '#!/bin/sh\\nexec sleep 600\\n' | sbatch --parsable --mem=16M "
                  "-o /dev/null || exit 1; done", timeout=120)
    assert out.returncode == 0, out.stderr
    ids = [int(line) for line in out.stdout.split()]
    assert len(ids) == 50
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = lab.slurm("squeue", "-h", "-t", "all", "-o", "%i %T").stdout.split("\n")
        if sum(1 for s in states if s.endswith(" RUNNING")) >= 50:
            break
        await asyncio.sleep(0.5)
    log = install_squeue_counter(lab)
    b = backend(lab, partitions=[], gpu_types={}, poll_interval=3)
    # the same cluster offered as a second backend (another partition): it shares the board
    other = backend(lab, partitions=["debug"], gpu_types={}, poll_interval=3)
    launches = [Launch(url="", state={"job_id": j, "account": lab.user, "node": "cpu1", "node_address": "-",
                                      "session_dir": f"/tmp/none/{j}"}) for j in ids]
    try:
        t0 = time.monotonic()
        results = await asyncio.gather(*((b if i % 2 else other).poll(launch) for i, launch in enumerate(launches)))
        took = time.monotonic() - t0
        assert results == [None] * 50
        assert calls(log) == 1 and b.board is other.board and b.board.rounds == 1
        assert b.commands == {"squeue": 1} and other.commands == {}  # the first backend's connection asked
        # the same round serves every poll within poll_interval, one at a time too
        for launch in launches:
            assert await b.poll(launch) is None
        assert calls(log) == 1
        # a new round after poll_interval: still one squeue for all, which sees the cancelled
        lab.slurm("scancel", *map(str, ids[:5]))
        await asyncio.sleep(3.1)
        results = await asyncio.gather(*(b.poll(launch) for launch in launches))
        assert results == [1] * 5 + [None] * 45
        assert calls(log) == 2 and b.handshakes == 1
        assert all(launch.state["ended"] == "CANCELLED: was cancelled" for launch in launches[:5])
        print(f"50 polls: one squeue in {took:.2f} s")
    finally:
        lab.slurm("scancel", *map(str, ids), check=False)
        await b.close()
        await other.close()


@pytest.fixture
def t4_blockers(slurm_lab):
    """Both T4 cards busy with other jobs (cancelled at the end)."""
    ids = [slurm_lab.sbatch("#!/bin/sh\nexec sleep 300\n", "--gres=gpu:t4:1", "--time=5") for _ in range(2)]
    for job in ids:
        slurm_lab.wait_job(job, {"RUNNING"})
    yield ids
    slurm_lab.slurm("scancel", *map(str, ids), check=False)


async def test_the_queue_wait_is_bounded_then_the_job_is_cancelled(slurm_lab, t4_blockers):
    lab = slurm_lab
    b = backend(lab, queue_wait=4)
    messages: list[str] = []
    t0 = time.monotonic()
    try:
        with pytest.raises(NoCapacity) as e:
            await b.launch(context(lab, "qw-1", messages), request(gpus=1, gpu_type="t4"))
    finally:
        await b.close()
    took = time.monotonic() - t0
    assert 4 <= took < 15, took
    job = int(next(m for m in messages if m.endswith("submitted")).split()[1])
    assert str(e.value).startswith(f"job {job} waited 4 s in the queue (pending: Resources")
    assert any(m.startswith(f"job {job} pending: Resources") for m in messages), messages
    assert lab.wait_job(job, {"CANCELLED"}, timeout=10)["state_reason"] in ("Resources", "None")


async def test_minimum_vram_picks_the_gpu_type_and_capacity_counts_it(slurm_lab):
    lab = slurm_lab
    b = backend(lab)
    try:
        launch = await b.launch(context(lab, "vram-1"), request(gpus=1, gpu_memory=40))
        job = launch.state["job_id"]
        shown = lab.job(job)
        assert (shown["job_state"], shown["nodes"]) == ("RUNNING", "gpu1")
        assert shown["tres_per_node"] == "gres:gpu:a100:1"
        assert launch.state["node"] == "gpu1" and [g.name for g in launch.gpus] == ["NVIDIA A100-SXM4-80GB"]
        cap = await b.probe_capacity()
        free = {h.name: (len(h.free_gpus()), len(h.gpus)) for h in cap.hosts}
        assert free == {"gpu1 [gpu, debug]": (1, 2), "gpu2 [gpu, debug]": (2, 2)}
        assert cap.summary() == "3 of 4 GPUs free, up to 80 GB"
        await b.stop(launch)
        assert lab.job(job)["job_state"] == "CANCELLED"
    finally:
        await b.close()


async def test_a_reason_that_never_clears_fails_at_once(slurm_lab):
    """A job Slurm accepts but can never start (here: it depends on a job that failed, reason
    DependencyNeverSatisfied): the launch fails with the reason at once, not after
    queue_wait, and the job is cancelled."""
    lab = slurm_lab
    failed = lab.sbatch("#!/bin/sh\nexit 3\n")
    lab.wait_job(failed, {"FAILED"})
    b = backend(lab, extra_options=[f"--dependency=afterok:{failed}"], queue_wait=60)
    messages: list[str] = []
    t0 = time.monotonic()
    try:
        with pytest.raises(BackendError) as e:
            await b.launch(context(lab, "never-1", messages), request())
    finally:
        await b.close()
    assert time.monotonic() - t0 < 15
    job = int(next(m for m in messages if m.endswith("submitted")).split()[1])
    assert str(e.value) == f"Slurm cannot run job {job} as asked: DependencyNeverSatisfied"
    assert lab.wait_job(job, {"CANCELLED"}, timeout=10)


def test_settings_errors_name_the_key(slurm_lab):
    with pytest.raises(Exception) as e:
        SlurmBackend.parse_settings("hpc", settings(slurm_lab, gpu_types={"a100": {"memory": "80"}}), KEY)
    assert str(e.value) == f"{KEY}['gpu_types']['a100']['memory']: must be the GB of memory per card, an integer >= 0 (got '80')"


async def test_a_node_failure_ends_the_server_with_its_reason(slurm_lab):
    """The job's node goes down (an admin's ``scontrol update state=down``, as Slurm does when
    a node stops answering): the job ends NODE_FAIL (never requeued: --no-requeue), and the
    next poll reports it with that reason."""
    lab = slurm_lab
    b = backend(lab, poll_interval=0.5)
    try:
        launch = await b.launch(context(lab, "nodefail-1"), request(gpus=1, gpu_type="t4"))
        assert launch.state["node"] == "gpu2" and await b.poll(launch) is None
        lab.slurm("scontrol", "update", "nodename=gpu2", "state=down", "reason=gridspawner-test")
        try:
            deadline = time.monotonic() + 30
            while (status := await b.poll(launch)) is None and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
        finally:
            resume(lab, "gpu2")
        assert status == 1
        assert launch.state["ended"] == "NODE_FAIL: ended because its node failed (NodeDown)"
        assert lab.job(launch.state["job_id"])["job_state"] == "NODE_FAIL"
    finally:
        await b.close()


def resume(lab: SlurmLab, node: str, timeout: float = 30) -> None:
    """Bring ``node`` back (Slurm refuses while the failed job is still being cleaned up)."""
    deadline = time.monotonic() + timeout
    while True:
        r = lab.slurm("scontrol", "update", f"nodename={node}", "state=resume", check=False)
        state = lab.slurm("sinfo", "-h", "-n", node, "-o", "%t").stdout.split()
        if r.returncode == 0 or state and state[0] in ("idle", "mix", "alloc"):
            break
        assert time.monotonic() < deadline, f"{node} not resumed: {r.stderr} {state}"
        time.sleep(0.5)
    while lab.slurm("sinfo", "-h", "-n", node, "-o", "%t").stdout.split()[0] not in ("idle", "mix", "alloc"):
        assert time.monotonic() < deadline, f"{node} not idle again"
        time.sleep(0.5)


async def test_crash_recovery_cancels_the_jobs_no_server_uses(slurm_lab):
    """A hub killed after sbatch leaves a job no saved state names: the reconciler cancels it
    (as its account) once it has been seen so for ``grace``; a job a server uses, another
    hub's job and a job of no hub are left alone."""
    lab = slurm_lab
    b = backend(lab)
    b.hub_id = "hub-a"
    other_hub = backend(lab)
    other_hub.hub_id = "hub-b"
    try:
        kept = await b.launch(context(lab, "rec-1"), request())
        orphan = await b.launch(context(lab, "rec-2"), request())  # its state is "lost"
        foreign = await other_hub.launch(context(lab, "rec-3"), request())
        plain = lab.sbatch("#!/bin/sh\nexec sleep 300\n")
        shown = lab.job(orphan.state["job_id"])
        assert shown["comment"] == "gridspawner hub=hub-a backend=hpc"
        known = lambda: [kept.state]  # noqa: E731
        first = await b.reconcile(known, grace=0.5)
        assert first.reclaimed == [] and len(first.kept) == 1 and first.errors == []
        await asyncio.sleep(0.6)
        second = await b.reconcile(known, grace=0.5)
        assert second.reclaimed == [f"job {orphan.state['job_id']} of {lab.user}: cancelled, no server of this hub uses it"]
        states = {j: lab.job(j)["job_state"] for j in (kept.state["job_id"], foreign.state["job_id"], plain)}
        assert set(states.values()) == {"RUNNING"}, states
        assert lab.wait_job(orphan.state["job_id"], {"CANCELLED"}, timeout=10)
        await b.stop(kept)
        await other_hub.stop(foreign)
        lab.slurm("scancel", str(plain))
    finally:
        await b.close()
        await other_hub.close()
