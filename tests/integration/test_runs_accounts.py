"""Notebook runs on the local backend as root: each run gets exactly its user's server's
confinement — its user's own Unix account (made by the backend, removed after), the
session directory handed to it inside the shared 0711 session root, its cgroup limits, and
every file of the job read back as the account. Real papermill and ipykernel, real accounts,
real cgroups, a real server of another user beside the run."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import pwd
import stat
import sys
import time
from pathlib import Path

import pytest
from relayhttp import http_get  # tests/ is on sys.path (tests/conftest.py)
from sshhosts.accounts import let_accounts_run
from test_runs_local import Lab, lab_root, notebook

from gridspawner.backends.base import BatchJob, LaunchContext
from gridspawner.backends.host import confine
from gridspawner.backends.local import LocalBackend
from gridspawner.request import LaunchRequest
from gridspawner.runs.files import OUTPUT

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="per-user accounts need root")

SERVER = str(Path(__file__).resolve().parents[1] / "fixtures" / "host_sock_server.py")
SECRET = "root-only-" + os.urandom(8).hex()


@pytest.fixture
async def lab():
    let_accounts_run(sys.executable, SERVER)
    lab = Lab(lab_root())
    backend = lab.catalog["backends"]["here"]
    backend["enforce_limits"] = True
    lab.catalog["memory_choices"] = [1, 2]
    lab.runs = lab.new_runtime()
    await lab.runs.start()
    yield lab
    await lab.close()


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid in /proc/{pid}/status")


def cgroup_dirs(session_dir: Path) -> list[Path]:
    name = confine.cgroup_name(str(session_dir))
    base = Path(confine.CGROUP_BASE)
    return [*base.glob(f"*/{confine.CGROUP_PARENT}/{name}"), *base.glob(f"{confine.CGROUP_PARENT}/{name}")]


async def until(check, timeout: float = 60.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def backend_of(lab: Lab) -> LocalBackend:
    """Another LocalBackend with the lab's settings (same session root, ledger, accounts)."""
    raw = {**lab.catalog["backends"]["here"], "notebook_dir": "~/notebooks", "start_wait": 20}
    raw.pop("kind")
    return LocalBackend("here", LocalBackend.parse_settings("here", raw, "c.GridSpawner.backends['here']"))


def request(cmd=(sys.executable, SERVER), memory=None) -> LaunchRequest:
    image = LocalBackend.parse_image("test", {"cmd": list(cmd)}, "img")
    return LaunchRequest(backend="here", backend_kind="local", image="test", gpus=0, gpu_memory=0,
                         image_settings=image, memory=memory)


def context(user: str, slug: str) -> LaunchContext:
    return LaunchContext(user=user, server_name="", slug=slug,
                         env={"JUPYTERHUB_API_TOKEN": "t", "PATH": os.environ["PATH"], "JUPYTERHUB_USER": user},
                         cmd=("jupyterhub-singleuser",), args=(), log=logging.getLogger("test"), progress=lambda m: None)


async def bobs_server(lab: Lab) -> tuple[LocalBackend, object]:
    """A server of another user (bob) in the same session root, as the hub would start it."""
    b = backend_of(lab)
    return b, await b.launch(context("bob", "bob-" + hashlib.sha256(b"bob").hexdigest()[:10]), request())


# the kernel's parent is papermill: its uid, and the uid the notebook's files get
WHO = ("import os, time\n"
       "papermill_uid = [l.split()[1] for l in open(f'/proc/{os.getppid()}/status') if l.startswith('Uid:')][0]\n"
       "open('mine', 'w').close()\n"
       "print('uids', os.getuid(), papermill_uid, os.stat('mine').st_uid)\n"
       "time.sleep(seconds)")


async def test_a_run_runs_as_its_users_account_beside_another_users_server(lab):
    b, bob = await bobs_server(lab)
    try:
        run_id = await lab.submit(notebook(WHO), {"seconds": 4.0}, gpus=0)
        await lab.wait(run_id, ("running",))
        sdir = lab.root / "s" / f"run-{run_id}"
        await until(lambda: (sdir / "work" / "mine").exists(), what="the notebook's file")
        alice = pwd.getpwnam(lab.account("alice"))
        st = os.stat(sdir, follow_symlinks=False)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (alice.pw_uid, 0o700)
        assert stat.S_IMODE(os.stat(lab.root / "s").st_mode) == 0o711  # the shared root stays 0711
        assert os.stat(sdir / "work" / "mine").st_uid == alice.pw_uid
        status, _ = await http_get(bob.url)  # bob's server (its own account) keeps answering
        assert status == 200 and uid_of(bob.state["pid"]) == pwd.getpwnam(lab.account("bob")).pw_uid
        row = await lab.wait(run_id, ("succeeded", "failed"), 60)
        assert row["status"] == "succeeded", row
        assert f"uids {alice.pw_uid} {alice.pw_uid} {alice.pw_uid}" in row["log_tail"]
        status, _ = await http_get(bob.url)
        assert status == 200 and stat.S_IMODE(os.stat(lab.root / "s").st_mode) == 0o711
        assert lab.sessions() == [bob.state["session_dir"].rsplit("/", 1)[1]]
    finally:
        await b.stop(bob, now=True)
        await b.close()


# the job replaces its log with a symlink to a file only root may read; the output notebook
# is replaced by one as well once papermill is done (by a process of its own, detached)
PLANT = ("import os, subprocess\n"
         "S = os.path.dirname(os.getcwd())\n"
         "os.remove(os.path.join(S, 'log'))\n"
         "os.symlink(secret, os.path.join(S, 'log'))\n"
         "subprocess.Popen(['/bin/sh', '-c', 'while kill -0 \"$1\" 2>/dev/null; do sleep 0.01; done; '\n"
         "                  'rm -f output.ipynb; ln -s \"$2\" output.ipynb', 'sh', str(os.getppid()), secret],\n"
         "                 start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,\n"
         "                 stderr=subprocess.DEVNULL)\n"
         "print('planted')")


async def test_a_job_symlinking_its_log_and_output_to_a_root_only_file_gets_nothing(lab):
    secret = lab.root / "secret"
    secret.write_text(SECRET + "\n")
    os.chmod(secret, 0o600)
    run_id = await lab.submit(notebook(PLANT, "secret = ''"), {"secret": str(secret)}, gpus=0)
    row = await lab.wait(run_id, ("succeeded", "failed"), 120)
    assert SECRET not in (row["log_tail"] or "") and SECRET not in (row["error"] or "")
    out = await lab.runs.files.read(run_id, OUTPUT)
    assert out is None or SECRET.encode() not in out
    assert secret.read_text() == SECRET + "\n"  # and nothing wrote through the links
    assert lab.sessions() == []


HOLD = "import time\ntime.sleep(seconds)"


async def test_a_runs_memory_choice_is_its_cgroups_limit_while_it_runs(lab):
    run_id = await lab.submit(notebook(HOLD), {"seconds": 5.0}, gpus=0, memory=1)
    await lab.wait(run_id, ("running",))
    sdir = lab.root / "s" / f"run-{run_id}"
    dirs = await until(lambda: cgroup_dirs(sdir), 20, "the run's cgroup")
    limits = [d / n for d in dirs for n in ("memory.max", "memory.limit_in_bytes") if (d / n).exists()]
    assert limits and 0 < int(limits[0].read_text()) <= 10**9
    pids = {int(p) for d in dirs for p in (d / "cgroup.procs").read_text().split()}
    assert pids and {uid_of(p) for p in pids} == {pwd.getpwnam(lab.account("alice")).pw_uid}
    row = await lab.wait(run_id, ("succeeded", "failed"), 60)
    assert row["status"] == "succeeded", row
    assert cgroup_dirs(sdir) == [] and lab.sessions() == []


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


async def test_crash_recovery_of_a_run_session_empties_and_removes_its_cgroup(lab):
    """A runs service killed after a job started (its database never saw it): the next look
    for orphans stops the job — as its account — and removes its cgroup, with the process
    that left the job's session (as papermill's kernel does)."""
    b = backend_of(lab)
    b.hub_id = "hub-crashed+runs"
    escaped = "import subprocess, sys, time; subprocess.Popen(['setsid', sys.executable, '-c', 'import time; time.sleep(300)']); time.sleep(300)"
    job = BatchJob(run_id="r1", argv=(sys.executable, "-c", escaped), files={"input.ipynb": b"{}"}, outputs=(), env={})
    launch = await b.start_batch(context("alice", "run-crashed"), request(memory=1), job)
    sdir = Path(launch.state["session_dir"])
    dirs = await until(lambda: cgroup_dirs(sdir), 20, "the job's cgroup")
    procs = await until(lambda: {int(p) for d in dirs for p in (d / "cgroup.procs").read_text().split()}
                        if len({int(p) for d in dirs for p in (d / "cgroup.procs").read_text().split()}) >= 2 else None,
                        20, "the job and the process that left its session")
    assert os.stat(sdir).st_uid == pwd.getpwnam(lab.account("alice")).pw_uid
    assert "kind=run" in (sdir / "owner").read_text().splitlines()
    await b.close()
    later = backend_of(lab)
    later.hub_id = "hub-crashed+runs"
    try:
        report = await later.reconcile(lambda: [], 0)
        assert len(report.reclaimed) == 1 and not report.errors, report
        assert not [p for p in procs if alive(p)]
        assert cgroup_dirs(sdir) == [] and not sdir.exists()
    finally:
        await later.close()
