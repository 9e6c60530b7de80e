"""The Slurm lab (tests/slurmlab) is a working cluster, seen the way the Slurm backend will see
it: an unprivileged account submits through the login node over SSH (sbatch, script on
stdin), jobs pend with Slurm's reason and run on the node with the GPU type asked for, get
CUDA_VISIBLE_DEVICES from the gres plugin, end by time limit or scancel; impossible requests
are refused at submit with Slurm's message; a server in a job is reached through the login
node over SSH (asyncssh, a jump to the compute node, a direct-streamlocal channel).

The 1-minute time limit costs 60-90 s of wall time by Slurm's design (limits are whole
minutes, checked every 30 s): that job is submitted when the module starts and checked by
the last test, so it overlaps the others.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import asyncssh
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slurmlab import NodeSpec, SlurmLab, SubmitRefused, available  # noqa: E402

pytestmark = pytest.mark.skipif(available() is not None, reason=available() or "")

SLEEP = "#!/bin/sh\necho CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES\necho pid=$$\nexec sleep 300\n"
REPORT = (
    "#!/bin/sh\n"
    "echo host=$(hostname) node=$SLURMD_NODENAME job_gpus=$SLURM_JOB_GPUS\n"
    "echo CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES\n"
    "nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used --format=csv,noheader,nounits\n"
    "sleep 300\n"
)


@pytest.fixture(scope="module", autouse=True)
def time_limited_job(slurm_lab):
    """A job with a 1-minute limit, submitted before the other tests run (see the docstring)."""
    job = slurm_lab.sbatch("#!/bin/sh\necho started\nsleep 600\n", "-p", "debug", "--time=1")
    yield job
    slurm_lab.slurm("scancel", str(job), check=False)


@pytest.fixture
def submit(slurm_lab):
    """``submit(script, *sbatch options)`` → job id, as the lab's account through the login
    node; the test's jobs are cancelled at its end."""
    ids: list[int] = []

    def run(script: str, *options: str) -> int:
        ids.append(slurm_lab.sbatch(script, *options))
        return ids[-1]

    yield run
    if ids:
        slurm_lab.slurm("scancel", *map(str, ids), check=False)


def ssh(lab: SlurmLab, command: str, host: str = "login") -> str:
    r = lab.run(command, host=host)
    assert r.returncode == 0, r
    return r.stdout


def output(lab: SlurmLab, job: int, pattern: str, timeout: float = 15) -> re.Match:
    """The first match of ``pattern`` in the job's slurm-JOB.out (in the account's shared home)."""
    path = lab.home() / f"slurm-{job}.out"
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        m = re.search(pattern, text, re.M)
        if m or time.monotonic() > deadline:
            assert m, f"{pattern!r} not in {path}: {text!r}"
            return m
        time.sleep(0.1)


def squeue(lab: SlurmLab, job: int, fmt: str, *extra: str) -> str:
    return ssh(lab, shlex.join(["squeue", "-h", "-t", "all", "-j", str(job), "-o", fmt, *extra])).strip()


def wait_squeue(lab: SlurmLab, job: int, fmt: str, pattern: str, timeout: float = 20, *extra: str) -> str:
    deadline = time.monotonic() + timeout
    while True:
        out = squeue(lab, job, fmt, *extra)
        if re.fullmatch(pattern, out) or time.monotonic() > deadline:
            assert re.fullmatch(pattern, out), f"job {job}: {out!r} !~ {pattern!r}"
            return out
        time.sleep(0.3)


def test_the_cluster_as_its_user_sees_it(slurm_lab):
    lab = slurm_lab
    assert ssh(lab, "id -u").strip() != "0"
    assert re.fullmatch(r"\d+\.\d+\.\d+", lab.slurm_version)
    print(f"Slurm {lab.slurm_version}, lab up in {lab.startup_seconds}")
    rows = {tuple(line.split()) for line in ssh(lab, "sinfo -h -N -o '%N %P %G %f'").splitlines()}
    assert rows == {
        ("gpu1", "gpu*", "gpu:a100:2", "a100,a100_80g"),
        ("gpu1", "debug", "gpu:a100:2", "a100,a100_80g"),
        ("gpu2", "gpu*", "gpu:t4:2", "t4,t4_16g"),
        ("gpu2", "debug", "gpu:t4:2", "t4,t4_16g"),
    }
    for name, host in lab.compute.items():
        node = ssh(lab, f"scontrol show node {name}")
        assert f"NodeAddr={host.address} NodeHostName={name}" in node
        # each compute node's sshd is reached through the login node and its nvidia-smi
        # reports that node's cards
        smi = ssh(lab, "nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used --format=csv,noheader,nounits", host=name)
        want = {"gpu1": "NVIDIA A100-SXM4-80GB, 81920", "gpu2": "Tesla T4, 15360"}[name]
        assert [line.split(", ", 2)[2].rsplit(", ", 1)[0] for line in smi.splitlines()] == [want, want]
    assert ssh(lab, "nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used --format=csv,noheader,nounits") == ""
    assert "Slurmctld(primary) at login is UP" in ssh(lab, "scontrol ping")


def test_pending_with_a_reason_then_running_on_the_t4_node(slurm_lab, submit):
    lab = slurm_lab
    blockers = [submit(SLEEP, "--gres=gpu:t4:1", "--time=5") for _ in range(2)]
    for job in blockers:
        wait_squeue(lab, job, "%T %N", "RUNNING gpu2")
    waiting = submit(REPORT, "--gres=gpu:t4:1", "--time=2")
    assert wait_squeue(lab, waiting, "%T %r", r"PENDING (Resources|Priority)") == "PENDING Resources"
    shown = ssh(lab, f"scontrol show job {waiting}")
    assert "JobState=PENDING Reason=Resources" in shown and "TresPerNode=gres:gpu:t4:1" in shown
    # the backfill pass (every second here) estimates when the blockers' time limit frees a card
    start = wait_squeue(lab, waiting, "%S", r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", 10, "--start")
    assert time.strptime(start, "%Y-%m-%dT%H:%M:%S")
    freed = output(lab, blockers[0], r"^CUDA_VISIBLE_DEVICES=(\d)$").group(1)
    ssh(lab, f"scancel {blockers[0]}")
    wait_squeue(lab, waiting, "%T %N", "RUNNING gpu2")
    assert output(lab, waiting, r"^CUDA_VISIBLE_DEVICES=(\d)$").group(1) == freed
    assert wait_squeue(lab, blockers[0], "%T", "CANCELLED")


def test_a_gpu_job_gets_its_own_card(slurm_lab, submit):
    lab = slurm_lab
    jobs = [submit(REPORT, "--gres=gpu:a100:1") for _ in range(2)]
    seen = set()
    for job in jobs:
        wait_squeue(lab, job, "%T %N", "RUNNING gpu1")
        m = output(lab, job, r"^host=(\S+) node=(\S+) job_gpus=(\d)$")
        assert m.group(1, 2) == ("gpu1", "gpu1")  # the job runs on the node's own hostname
        cvd = output(lab, job, r"^CUDA_VISIBLE_DEVICES=(\d)$").group(1)
        assert cvd == m.group(3)
        detail = ssh(lab, f"scontrol -d show job {job}")
        assert f"Nodes=gpu1 " in detail and f"GRES=gpu:a100:1(IDX:{cvd})" in detail
        assert lab.job(job)["gres_detail"] == [f"gpu:a100:1(IDX:{cvd})"]
        # the job's nvidia-smi is gpu1's driver: both A100s (no cgroup hides the other one)
        smi = output(lab, job, r"(^\d, GPU-\S+, NVIDIA A100-SXM4-80GB, 81920, 0\n){2}").group(0)
        assert smi.count("A100") == 2
        seen.add(cvd)
    assert seen == {"0", "1"}  # two jobs, two different cards
    # the card index is the gres.conf File= line's device: a character device made for the lab
    dev = lab.layout.node_dir("gpu1") / "dev" / "nvidia1"
    assert dev.is_char_device() and os.major(dev.stat().st_rdev) == 195 and os.minor(dev.stat().st_rdev) == 1
    assert f"File={lab.layout.node_dir('gpu1') / 'dev' / 'nvidia0'},{dev}" in (lab.etc / "gres.conf").read_text()


@pytest.mark.parametrize(
    "options, message",
    [
        (["--gres=gpu:t4:3"], "Requested node configuration is not available"),
        (["--gres=gpu:h100:1"], "Requested node configuration is not available"),
        (["-p", "nope"], "invalid partition specified: nope"),
        (["-p", "debug", "--time=60"], "Requested time limit is invalid (missing or exceeds some limit)"),
        (["--qos=nope"], "Invalid qos specification"),
        (["--qos=short", "--time=20"], "Job violates accounting/QOS policy"),
        (["-A", "nope"], "Invalid account or account/partition combination specified"),
    ],
)
def test_an_impossible_request_is_refused_at_submit(slurm_lab, options, message):
    with pytest.raises(SubmitRefused) as refused:
        slurm_lab.sbatch("#!/bin/sh\ntrue\n", *options)
    assert message in str(refused.value)


def test_qos_account_and_finished_jobs_in_squeue_and_sacct(slurm_lab, submit):
    lab = slurm_lab
    job = submit("#!/bin/sh\necho done\n", "-p", "debug", "--qos=short", "--time=5", "--gres=gpu:t4:1")
    wait_squeue(lab, job, "%T", "COMPLETED")
    # a finished job stays in squeue -t all for MinJobAge, and in sacct after that
    assert squeue(lab, job, "%T %P %q %a %N") == "COMPLETED debug short research gpu2"
    # slurmctld sends the job to slurmdbd asynchronously: for a few seconds sacct may not know
    # it, then shows it with an empty Partition and QOS "Unknown" (seen here, 22.05.8)
    deadline = time.monotonic() + 20
    while True:
        acct = ssh(lab, f"sacct -n -P -X -j {job} -o State,Partition,QOS,Account,NodeList,AllocTRES").strip()
        if acct.startswith("COMPLETED|debug|") or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    state, part, qos, account, node, tres = acct.split("|")
    assert (state, part, qos, account, node) == ("COMPLETED", "debug", "short", "research", "gpu2")
    assert "gres/gpu:t4=1" in tres


def test_scancel_ends_a_running_job(slurm_lab, submit):
    lab = slurm_lab
    job = submit(SLEEP, "-p", "debug")
    wait_squeue(lab, job, "%T", "RUNNING")
    pid = output(lab, job, r"^pid=(\d+)$").group(1)
    proc = Path(f"/proc/{pid}")
    assert proc.stat().st_uid == lab.home().stat().st_uid  # the job's process, as the account
    ssh(lab, f"scancel {job}")
    wait_squeue(lab, job, "%T", "CANCELLED")
    deadline = time.monotonic() + 10
    while running(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(int(pid))


async def test_a_server_in_a_job_is_reached_through_the_login_node(slurm_lab, submit):
    """What the Slurm backend will do: a server on a unix socket in the job; the hub reaches
    it over SSH to the login node, a jump to the job's node (its NodeAddr from scontrol) and
    a direct-streamlocal channel to the socket."""
    lab = slurm_lab
    sock = lab.home() / f".gs-lab-{os.getpid()}.sock"
    job = submit(
        f"#!/bin/sh\nexec python3 {lab.bin / 'host_sock_server.py'} --ServerApp.sock={sock} --ServerApp.sock_mode=0600\n",
        "--gres=gpu:t4:1",
    )
    wait_squeue(lab, job, "%T %N", "RUNNING gpu2")
    node_addr = re.search(r"NodeAddr=(\S+)", ssh(lab, "scontrol show node gpu2")).group(1)
    deadline = time.monotonic() + 15
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    common = dict(username=lab.user, client_keys=[str(lab.ssh.client_key)], known_hosts=str(lab.ssh.known_hosts), connect_timeout=10)
    async with asyncssh.connect(lab.login.address, **common) as login:
        async with asyncssh.connect(node_addr, tunnel=login, **common) as node:
            reader, writer = await node.open_unix_connection(str(sock))
            writer.write(b"GET /env HTTP/1.0\r\nHost: x\r\n\r\n")
            data = (await reader.read()).decode()
            writer.close()
    head, _, body = data.partition("\r\n\r\n")
    assert head.split()[1] == "200"
    env = json.loads(body)
    assert env["cuda_visible_devices"] in {"0", "1"}
    # the server runs on gpu2: in its network namespace, as the lab's account
    gpu2_netns = os.stat(f"/run/netns/{lab.compute['gpu2'].netns}").st_ino
    assert os.readlink(f"/proc/{env['pid']}/ns/net") == f"net:[{gpu2_netns}]"
    assert Path(f"/proc/{env['pid']}").stat().st_uid == lab.home().stat().st_uid != 0
    ssh(lab, f"scancel {job}")
    wait_squeue(lab, job, "%T", "CANCELLED")


def running(pid: int) -> bool:
    """Not ended: a killed job process whose parent was killed too is re-parented to this
    machine's init and stays a zombie (no memory, no files) until init reaps it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_a_small_lab_without_accounting_is_torn_down_by_pid():
    """A second cluster beside the session's (its own namespaces, munged, slurmctld, account):
    without slurmdbd there is no sacct and no QoS, jobs still run; close() leaves nothing."""
    lab = SlurmLab(nodes=(NodeSpec("cpu1", cpus=2, memory_mib=2048),), accounting=False)
    try:
        lab.start()
        assert [d.name for d in lab.daemons] == ["munged", "slurmctld", "slurmd cpu1"]
        job = lab.sbatch("#!/bin/sh\nsleep 300\n")
        lab.wait_job(job, {"RUNNING"})
        r = lab.run("sacct -j 1")
        assert "Slurm accounting storage is disabled" in r.stderr
        pids = [d.pid for d in lab.daemons]
        pids += [int(p) for p in subprocess.run(["ps", "-o", "pid=", "-u", lab.user], capture_output=True, text=True).stdout.split()]
        namespaces = [h.netns for h in lab.ssh.hosts.values()]
        user, home, root = lab.user, lab.home(), lab.root
        assert len(pids) >= 4 and home.is_dir()  # munged, slurmctld, slurmd, the job's sleep
    finally:
        lab.close()
    assert not [p for p in pids if running(p)]
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [ns for ns in namespaces if ns in listed]
    assert subprocess.run(["id", user], capture_output=True).returncode != 0
    assert not home.exists() and not root.exists()


def test_a_time_limit_ends_the_job(slurm_lab, time_limited_job):
    """Runs last: its job was submitted when the module started (see the docstring)."""
    lab = slurm_lab
    assert wait_squeue(lab, time_limited_job, "%T %r %l", r"TIMEOUT TimeLimit 1:00", 120) == "TIMEOUT TimeLimit 1:00"
    assert output(lab, time_limited_job, r"CANCELLED AT \S+ DUE TO TIME LIMIT")
    deadline = time.monotonic() + 15
    while "TIMEOUT" not in (state := ssh(lab, f"sacct -n -P -X -j {time_limited_job} -o State")) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert state.strip() == "TIMEOUT"
