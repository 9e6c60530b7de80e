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

from slurmlab import GPU, NodeSpec, SlurmLab, SubmitRefused, available, cgroups  # noqa: E402

pytestmark = pytest.mark.skipif(available() is not None, reason=available() or "")

SLEEP = "#!/bin/sh\necho pid=$$\nexec sleep 300\n"
SMI = "nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used --format=csv,noheader,nounits"


def report_script(lab: SlurmLab) -> str:
    """A job that prints where it runs, its GPU variables, whether it may open each of its
    node's GPU device files (the open error's text), its nvidia-smi; then sleeps."""
    return (
        "#!/bin/sh\n"
        "echo host=$(hostname) node=$SLURMD_NODENAME job_gpus=$SLURM_JOB_GPUS cuda=$CUDA_VISIBLE_DEVICES\n"
        f"for d in {lab.layout.nodes_dir}/$SLURMD_NODENAME/dev/nvidia*; do\n"
        '  echo "device ${d##*/}: $( (exec 3<"$d") 2>&1 | sed "s/.*: //")"\n'
        "done\n"
        f"echo smi:; {SMI}; echo end\n"
        "sleep 300\n"
    )


def job_report(lab: SlurmLab, job: int) -> dict:
    """What `report_script` printed: host, node, job_gpus, cuda, devices {file: open error
    ("" = opened)}, smi (nvidia-smi's lines)."""
    text = output(lab, job, r"^end$").string
    m = re.search(r"^host=(\S+) node=(\S+) job_gpus=(\S*) cuda=(\S*)$", text, re.M)
    return {
        **dict(zip(("host", "node", "job_gpus", "cuda"), m.groups())),
        "devices": dict(re.findall(r"^device (nvidia\d+): (.*)$", text, re.M)),
        "smi": text.split("smi:\n", 1)[1].split("end\n", 1)[0].splitlines(),
    }


def card(lab: SlurmLab, job: int) -> int:
    """The card Slurm gave ``job`` (its GRES index on the node)."""
    return int(re.fullmatch(r"gpu:\w+:1\(IDX:(\d+)\)", lab.job(job)["gres_detail"][0]).group(1))


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
        smi = ssh(lab, SMI, host=name)
        want = {"gpu1": "NVIDIA A100-SXM4-80GB, 81920", "gpu2": "Tesla T4, 15360"}[name]
        assert smi.splitlines() == [f"{i}, {lab.card_uuid(name, i)}, {want}, 0" for i in (0, 1)]
    assert ssh(lab, SMI) == ""  # the login node has no GPU
    assert "Slurmctld(primary) at login is UP" in ssh(lab, "scontrol ping")


def test_pending_with_a_reason_then_running_on_the_t4_node(slurm_lab, submit):
    lab = slurm_lab
    blockers = [submit(SLEEP, "--gres=gpu:t4:1", "--time=5") for _ in range(2)]
    for job in blockers:
        wait_squeue(lab, job, "%T %N", "RUNNING gpu2")
    waiting = submit(report_script(lab), "--gres=gpu:t4:1", "--time=2")
    assert wait_squeue(lab, waiting, "%T %r", r"PENDING (Resources|Priority)") == "PENDING Resources"
    shown = ssh(lab, f"scontrol show job {waiting}")
    assert "JobState=PENDING Reason=Resources" in shown and "TresPerNode=gres:gpu:t4:1" in shown
    # the backfill pass (every second here) estimates when the blockers' time limit frees a card
    start = wait_squeue(lab, waiting, "%S", r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", 10, "--start")
    assert time.strptime(start, "%Y-%m-%dT%H:%M:%S")
    freed = card(lab, blockers[0])
    ssh(lab, f"scancel {blockers[0]}")
    wait_squeue(lab, waiting, "%T %N", "RUNNING gpu2")
    assert card(lab, waiting) == freed and job_report(lab, waiting)["job_gpus"] == str(freed)
    assert wait_squeue(lab, blockers[0], "%T", "CANCELLED")


def test_a_gpu_job_gets_its_own_card(slurm_lab, submit):
    """With ConstrainDevices (cgroup v1 here): the job may open only its card's device file,
    CUDA_VISIBLE_DEVICES is 0 (the visible cards are renumbered) and nvidia-smi lists only its
    card, with that card's UUID; SLURM_JOB_GPUS and scontrol keep the node's index. (Without
    it, test_a_lab_without_accounting_or_cgroups_runs_and_is_torn_down_by_pid shows the other
    behaviour.)"""
    lab = slurm_lab
    if not lab.constrain_devices:
        pytest.skip(cgroups.v1_available() or "devices not constrained")
    jobs = [submit(report_script(lab), "--gres=gpu:a100:1") for _ in range(2)]
    for job in jobs:
        wait_squeue(lab, job, "%T %N", "RUNNING gpu1")
    cards = [card(lab, job) for job in jobs]
    assert sorted(cards) == [0, 1]  # two jobs, two different cards
    for job, idx in zip(jobs, cards):
        r = job_report(lab, job)
        assert (r["host"], r["node"], r["job_gpus"], r["cuda"]) == ("gpu1", "gpu1", str(idx), "0")
        assert f"GRES=gpu:a100:1(IDX:{idx})" in ssh(lab, f"scontrol -d show job {job}")
        # its own card: allowed by the devices cgroup (no driver behind it: ENXIO); the other:
        # denied (EPERM)
        assert r["devices"] == {f"nvidia{idx}": "No such device or address", f"nvidia{1 - idx}": "Operation not permitted"}
        assert r["smi"] == [f"0, {lab.card_uuid('gpu1', idx)}, NVIDIA A100-SXM4-80GB, 81920, 0"]
    # the index is the position of the card's device in gres.conf's File= list: character
    # devices with the driver's major (195), made for the lab
    dev0, dev1 = (lab.layout.node_dir("gpu1") / "dev" / f"nvidia{i}" for i in (0, 1))
    assert f"NodeName=gpu1 Name=gpu Type=a100 File={dev0},{dev1}" in (lab.etc / "gres.conf").read_text()
    assert dev1.is_char_device() and (os.major(dev1.stat().st_rdev), os.minor(dev1.stat().st_rdev)) == (195, 1)


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


def test_a_lab_without_accounting_or_cgroups_runs_and_is_torn_down_by_pid():
    """A second cluster beside the session's (its own namespaces, munged, slurmctld, account).
    Without slurmdbd: no sacct (and no QoS or accounts); without cgroups: a GPU job may open
    every card of its node and CUDA_VISIBLE_DEVICES is the card's index on the node.
    close() leaves no process, namespace, account, home, temp dir or cgroup behind."""
    lab = SlurmLab(nodes=(NodeSpec("gpu9", gpus=(GPU("t4", "Tesla T4", 15360, 2),)),), accounting=False, constrain_devices=False)
    try:
        lab.start()
        assert [d.name for d in lab.daemons] == ["munged", "slurmctld", "slurmd gpu9"]
        jobs = [lab.sbatch(report_script(lab), "--gres=gpu:t4:1") for _ in range(2)]
        for job in jobs:
            lab.wait_job(job, {"RUNNING"})
            idx, r = card(lab, job), job_report(lab, job)
            assert (r["job_gpus"], r["cuda"]) == (str(idx), str(idx))
            assert r["devices"] == {"nvidia0": "No such device or address", "nvidia1": "No such device or address"}
            assert len(r["smi"]) == 2
        assert "Slurm accounting storage is disabled" in lab.run(f"sacct -j {jobs[0]}").stderr
        pids = [d.pid for d in lab.daemons]
        pids += [int(p) for p in subprocess.run(["ps", "-o", "pid=", "-u", lab.user], capture_output=True, text=True).stdout.split()]
        namespaces = [h.netns for h in lab.ssh.hosts.values()]
        user, home, root = lab.user, lab.home(), lab.root
        assert len(pids) >= 5 and home.is_dir()  # munged, slurmctld, slurmd, the jobs' shells
    finally:
        lab.close()
    assert not [p for p in pids if running(p)]
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [ns for ns in namespaces if ns in listed]
    assert subprocess.run(["id", user], capture_output=True).returncode != 0
    assert not home.exists() and not root.exists()


def test_closing_a_lab_removes_its_cgroups(slurm_lab):
    """Each lab's slurmds run in cgroups of their own; closing a lab removes its cgroups, and
    only its own (the session lab's are still there)."""
    if not slurm_lab.constrain_devices:
        pytest.skip(cgroups.v1_available() or "devices not constrained")
    lab = SlurmLab(nodes=(NodeSpec("gpu8", gpus=(GPU("t4", "Tesla T4", 15360, 1),)),), accounting=False)
    try:
        lab.start()
        job = lab.sbatch(SLEEP, "--gres=gpu:t4:1")
        lab.wait_job(job, {"RUNNING"})
        made = sorted(Path("/sys/fs/cgroup").glob(f"*/slurmlab-{lab.cluster}-gpu8/slurm_gpu8/uid_*/job_{job}"))
        assert [p.parent.parent.parent.parent.name for p in made] == ["devices", "freezer"]
    finally:
        lab.close()
    assert lab.cgroup_leftovers == []
    assert not list(Path("/sys/fs/cgroup").glob(f"*/slurmlab-{lab.cluster}-*"))
    assert list(Path("/sys/fs/cgroup").glob(f"devices/slurmlab-{slurm_lab.cluster}-gpu1"))


def test_a_time_limit_ends_the_job(slurm_lab, time_limited_job):
    """Runs last: its job was submitted when the module started (see the docstring)."""
    lab = slurm_lab
    assert wait_squeue(lab, time_limited_job, "%T %r %l", r"TIMEOUT TimeLimit 1:00", 120) == "TIMEOUT TimeLimit 1:00"
    assert output(lab, time_limited_job, r"CANCELLED AT \S+ DUE TO TIME LIMIT")
    deadline = time.monotonic() + 15
    while "TIMEOUT" not in (state := ssh(lab, f"sacct -n -P -X -j {time_limited_job} -o State")) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert state.strip() == "TIMEOUT"
