"""The local backend with ``run_as: "user"`` (the default as root): real Unix accounts made by
the test (useradd, unique per run, removed after), real processes, real cgroups (v1 here,
v2 where the host has it). No hub: LocalBackend driven directly (the hub test is in
test_hub_accounts.py)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import pwd
import shutil
import stat
import sys
import tempfile
import time
from pathlib import Path

import pytest
from relayhttp import http_get  # tests/ is on sys.path (tests/conftest.py)
from sshhosts.accounts import account_command, let_accounts_run, run_as, unix_accounts

from gridspawner.backends.base import BackendError, Launch, LaunchContext
from gridspawner.backends.host import confine, probe_scripts, scripts
from gridspawner.backends.local import LocalBackend
from gridspawner.request import LaunchRequest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="per-user accounts need root")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SERVER = str(FIXTURES / "host_sock_server.py")
FAKE_SMI = str(FIXTURES / "fake_nvidia_smi")
GPUS = "Tesla T4,15360;NVIDIA A10,23028"
TOKEN = "tok-" + hashlib.sha256(os.urandom(16)).hexdigest()
RUN = os.urandom(3).hex()
PREFIX = f"gs{RUN}-"  # accounts of this run: gs<hex>-alice, gs<hex>-bob


@pytest.fixture(scope="module")
def accounts():
    let_accounts_run(SERVER)
    with unix_accounts(PREFIX + "alice", PREFIX + "bob") as names:
        yield names


@pytest.fixture
def root():
    d = tempfile.mkdtemp(dir="/tmp", prefix="gsu-")
    os.chmod(d, 0o711)
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
async def backends(root):
    made: list[LocalBackend] = []
    launched: list[Launch] = []

    def make(**extra) -> LocalBackend:
        raw = {"session_root": str(root / "s"), "ledger_dir": str(root / "l"), "notebook_dir": "~/notebooks",
               "nvidia_smi": ["env", f"FAKE_NVIDIA_SMI_GPUS={GPUS}", FAKE_SMI], "account": PREFIX + "{username}",
               "interrupt_timeout": 2, "term_timeout": 2, "kill_timeout": 3, "start_wait": 20, **extra}
        b = LocalBackend("here", LocalBackend.parse_settings("here", raw, "c.GridSpawner.backends['here']"))
        made.append(b)
        return b

    make.launched = launched
    yield make
    for b in made:
        for launch in launched:
            try:
                await b.stop(launch, now=True)
            except Exception:
                pass
        await b.close()


def request(*, gpus=0, cpu=None, memory=None, cmd=None) -> LaunchRequest:
    image = LocalBackend.parse_image("test", {"cmd": cmd or [sys.executable, SERVER]}, "img")
    return LaunchRequest(backend="here", backend_kind="local", image="test", gpus=gpus, gpu_memory=0,
                         image_settings=image, cpu=cpu, memory=memory)


def context(user: str, messages: list | None = None) -> LaunchContext:
    slug = f"{user}-{hashlib.sha256(user.encode()).hexdigest()[:10]}"
    return LaunchContext(user=user, server_name="", slug=slug,
                         env={"JUPYTERHUB_API_TOKEN": TOKEN, "PATH": os.environ["PATH"], "JUPYTERHUB_USER": user},
                         cmd=("jupyterhub-singleuser",), args=(), log=logging.getLogger("test"),
                         progress=(messages.append if messages is not None else (lambda m: None)))


async def start(make, backend, user, req, messages=None) -> Launch:
    launch = await backend.launch(context(user, messages), req)
    make.launched.append(launch)
    return launch


def ids(pid: int) -> tuple[int, int, set[int]]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    field = {line.split(":")[0]: line.split(":")[1].split() for line in status}
    return int(field["Uid"][0]), int(field["Gid"][0]), {int(g) for g in field["Groups"]}


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


async def test_each_server_runs_as_its_user_and_cannot_reach_the_other(accounts, backends, root):
    alice, bob = accounts
    b = backends()
    messages: list[str] = []
    la = await start(backends, b, "alice", request(gpus=1), messages)
    lb = await start(backends, b, "bob", request(gpus=1))
    assert f"running as account {alice}" in messages
    pa, pb = pwd.getpwnam(alice), pwd.getpwnam(bob)
    for launch, pw in ((la, pa), (lb, pb)):
        uid, gid, _ = ids(launch.state["pid"])
        assert (uid, gid) == (pw.pw_uid, pw.pw_gid)
        status, body = await http_get(launch.url)  # the hub (root) still reaches the 0600 socket
        assert status == 200 and "allow-root" not in body
        sdir = Path(launch.state["session_dir"])
        st = sdir.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (pw.pw_uid, 0o700)
        assert stat.S_IMODE(Path(launch.state["socket"]).stat().st_mode) == 0o600
        assert stat.S_IMODE(os.stat(root / "s").st_mode) == 0o711 and os.stat(root / "s").st_uid == 0
        assert os.environ["HOME"] != pw.pw_dir and Path(pw.pw_dir, "notebooks").is_dir()
    # two users never get the same GPU although root made both claims
    assert la.gpus[0].uuid != lb.gpus[0].uuid
    a_dir = la.state["session_dir"]
    run_as(alice, "sh", "-c", "echo secret > ~/notebooks/nb.ipynb")
    # bob, with a shell on the machine, against alice's files and server
    for argv in (["ls", a_dir], ["cat", f"{a_dir}/server.log"], ["cat", f"{a_dir}/pid"], ["ls", str(root / "s")],
                 ["cat", f"{pa.pw_dir}/notebooks/nb.ipynb"], ["kill", "-s", "KILL", str(la.state["pid"])],
                 ["touch", str(root / "l" / "forged")], ["ls", str(root / "l")]):
        r = run_as(bob, *argv)
        assert r.returncode != 0, (argv, r.stdout)
    assert alive(la.state["pid"])
    # alice's server process itself cannot read bob's session either
    r = run_as(alice, "ls", lb.state["session_dir"])
    assert r.returncode != 0
    for launch in (la, lb):
        await b.stop(launch)
        assert not alive(launch.state["pid"]) and not Path(launch.state["session_dir"]).exists()
    assert not [p for p in (root / "l").iterdir() if "@" in p.name]


async def test_planted_pid_file_symlinked_log_and_stops_file_get_the_user_nothing(accounts, backends, root):
    alice, bob = accounts
    b = backends()
    la = await start(backends, b, "alice", request())
    lb = await start(backends, b, "bob", request())
    a_dir = la.state["session_dir"]
    victim = root / "victim"
    victim.write_text("root's\n")
    os.chmod(victim, 0o600)
    # alice points her files at root's and bob's things
    r = run_as(alice, "sh", "-c", f"ln -sf {victim} {a_dir}/stops.json && ln -sf /etc/shadow {a_dir}/server.log && rm {a_dir}/jupyter.sock")
    assert r.returncode == 0, r.stderr
    assert await b.announce_stops(la, [{"at": 1, "reason": "x"}])
    assert victim.read_text() == "root's\n"
    shown = await b._run(b.login_of(la.state), probe_scripts.wait_script(a_dir, 999999999, 0), "wait")
    assert "@@dead" in shown.stdout and "root:" not in shown.stdout
    # her pid file names bob's server; stopping her server must not signal his
    r = run_as(alice, "sh", "-c", f"echo {lb.state['pid']} > {a_dir}/pid")
    assert r.returncode == 0, r.stderr
    await b.stop(la, now=True)
    # a clean-up that knows no pid reads it from the session directory: it signals as alice
    await b._run(b.login_of(la.state), scripts.stop_script(a_dir, None, now=True, kill_timeout=1), "cleanup")
    assert alive(lb.state["pid"])
    status, _ = await http_get(lb.url)
    assert status == 200


def cgroup_dirs(session_dir: str) -> list[Path]:
    name = confine.cgroup_name(session_dir)
    return [p for p in Path(confine.CGROUP_BASE).glob(f"*/{confine.CGROUP_PARENT}/{name}")] + \
        [p for p in Path(confine.CGROUP_BASE).glob(f"{confine.CGROUP_PARENT}/{name}")]


def cgroup_file(session_dir: str, *names: str) -> Path:
    for d in cgroup_dirs(session_dir):
        for n in names:
            if (d / n).exists():
                return d / n
    raise AssertionError(f"none of {names} in {cgroup_dirs(session_dir)}")


HOG = "import time; b = bytearray(3 * 10**9); time.sleep(120)"


async def test_a_server_over_its_memory_is_killed_and_the_other_keeps_running(accounts, backends):
    b = backends()
    # the "notebook": a child of the server that allocates 3 GB with a 1 GB choice
    hog = ["/bin/sh", "-c", f"{sys.executable} -c '{HOG}' & exec \"$0\" \"$@\"", sys.executable, SERVER]
    lb = await start(backends, b, "bob", request(memory=1))
    la = await start(backends, b, "alice", request(memory=1, cmd=hog))
    limit = cgroup_file(la.state["session_dir"], "memory.max", "memory.limit_in_bytes")
    assert int(limit.read_text()) <= 10**9
    events = cgroup_file(la.state["session_dir"], "memory.events", "memory.oom_control")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "oom_kill 0" in events.read_text():
        await asyncio.sleep(0.5)
    assert "oom_kill 0" not in events.read_text(), events.read_text()
    for launch in (la, lb):  # the hog is gone; both servers still serve
        assert alive(launch.state["pid"])
        status, _ = await http_get(launch.url)
        assert status == 200
    await b.stop(la)
    assert cgroup_dirs(la.state["session_dir"]) == []


SPIN = "while True: pass"


async def test_one_cpu_means_one_cpu_and_stop_leaves_no_process_or_cgroup(accounts, backends):
    b = backends()
    # two busy processes, one of them escaped into its own session: the cgroup still holds it
    spin = ["/bin/sh", "-c", f"{sys.executable} -c '{SPIN}' & setsid {sys.executable} -c '{SPIN}' & exec \"$0\" \"$@\"",
            sys.executable, SERVER]
    la = await start(backends, b, "alice", request(cpu=1, cmd=spin))
    sdir = la.state["session_dir"]
    usage = cgroup_file(sdir, "cpuacct.usage", "cpu.stat")

    def used() -> float:  # CPU seconds
        text = usage.read_text()
        if usage.name == "cpu.stat":
            return int(text.split("usage_usec")[1].split()[0]) / 1e6
        return int(text) / 1e9

    procs = {int(p) for p in cgroup_file(sdir, "cgroup.procs").read_text().split()}
    assert len(procs) >= 3
    await asyncio.sleep(1)
    u0, t0 = used(), time.monotonic()
    await asyncio.sleep(4)
    rate = (used() - u0) / (time.monotonic() - t0)
    assert 0.2 < rate < 1.15, rate  # two spinning processes, one CPU's quota
    await b.stop(la)
    assert not [p for p in procs if alive(p)]
    assert cgroup_dirs(sdir) == []


async def test_missing_account_bad_template_and_created_accounts(accounts, backends):
    b = backends()
    with pytest.raises(BackendError, match=f"no Unix account '{PREFIX}carol'"):
        await b.launch(context("carol"), request())
    with pytest.raises(BackendError, match="not a safe account name"):
        await b.launch(context("Eve"), request())
    made = backends(create_accounts=True)
    try:
        launch = await start(backends, made, "dave", request())
        assert ids(launch.state["pid"])[0] == pwd.getpwnam(PREFIX + "dave").pw_uid
        await made.stop(launch)
    finally:
        account_command(["userdel", "-r", "-f", PREFIX + "dave"], check=False)


async def test_limits_that_cannot_be_applied_fail_the_start(accounts, backends, monkeypatch):
    b = backends()
    monkeypatch.setattr(confine, "CGROUP_BASE", "/nonexistent-cgroups")
    with pytest.raises(BackendError, match="cannot apply the CPU / memory limits"):
        await b.launch(context("alice"), request(cpu=1))


async def test_crash_reclaim_of_a_per_user_server_empties_and_removes_its_cgroup(accounts, backends):
    """A hub killed after the launch (its database never saw the server): the next hub's
    look for orphans stops the server — as its account — and removes its cgroup."""
    b = backends()
    b.hub_id = "hub-crashed"
    spin = ["/bin/sh", "-c", f"setsid {sys.executable} -c 'import time; time.sleep(300)' & exec \"$0\" \"$@\"",
            sys.executable, SERVER]
    orphan = await start(backends, b, "alice", request(gpus=1, memory=1, cmd=spin))
    sdir = orphan.state["session_dir"]
    procs = {int(p) for p in cgroup_file(sdir, "cgroup.procs").read_text().split()}
    assert len(procs) >= 2 and cgroup_dirs(sdir)
    await b.close()
    later = backends()
    later.hub_id = "hub-crashed"
    report = await later.reconcile(lambda: [], 0)
    assert len(report.reclaimed) == 1 and not report.errors, report
    assert not [p for p in procs if alive(p)]
    assert cgroup_dirs(sdir) == [] and not Path(sdir).exists()
    assert report.freed_claims == 1
