"""Crash recovery on a host (`gridspawner.backends.host.orphans`): sessions made by the real
claim and launch scripts (the server: a `sleep` that leads its own session, as a real one
does), listed by the real probe, judged by `find_orphans` and reclaimed by the real
`reclaim_script` — all run by /bin/sh on this machine, no hub."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from gridspawner.backends.host import launch_scripts, ledger_claim, probe_scripts, scripts
from gridspawner.backends.host.inventory import Inventory, LedgerEntry, SessionDir, parse_probe
from gridspawner.backends.host.orphans import find_orphans, parse_reclaim, reclaim_script
from gridspawner.backends.host.session_marks import owner_lines, sessions_lines

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SMI = ("env", "FAKE_NVIDIA_SMI_SEED=orphans", "FAKE_NVIDIA_SMI_GPUS=Tesla T4,15360;NVIDIA A10,23028",
       str(FIXTURES / "fake_nvidia_smi"))
HUB, BACKEND = "hub-a", "here"
#: a "server" that ignores the arguments the launch script adds (--ServerApp.sock=…)
SERVER = ("/bin/sh", "-c", "exec sleep 300", "server")


def sh(script: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run(["/bin/sh", "-s"], input=script, capture_output=True, text=True, env=env, timeout=timeout)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


class Host:
    """A session root and ledger in a temp directory; sessions launched by the real scripts."""

    def __init__(self, root: Path):
        self.root = root
        self.sessions = root / "s"
        self.ledger = root / "l"
        self.pids: list[int] = []

    def probe(self, grace: float = 0) -> Inventory:
        return parse_probe(sh(probe_scripts.probe_script(SMI, str(self.ledger), grace=grace,
                                                   session_root=str(self.sessions))).stdout)

    def launch(self, slug: str, gpus: int = 1, hub: str = HUB, backend: str = BACKEND) -> int:
        session_dir = f"{self.sessions}/{slug}"
        entry = scripts.ledger_entry_name(session_dir, slug)
        claims: tuple[str, ...] = ()
        if gpus:
            free = [g.uuid for g in self.probe(grace=120).free()][:gpus]
            r = sh(ledger_claim.claim_script(str(self.ledger), entry, free, session_dir=session_dir, owner="test",
                                       user=slug, grace=120, shared=False, hub=hub, backend=backend))
            assert r.returncode == 0, r.stdout + r.stderr
            claims = ledger_claim.claimed_files(r.stdout)
        spec = launch_scripts.LaunchSpec(session_root=str(self.sessions), slug=slug, notebook_dir=str(self.root / "nb"),
                                  env={"GS_TEST": "1"}, cmd=SERVER, ledger_dir=str(self.ledger),
                                  ledger_entry=entry if claims else None, ledger_claims=claims, hub=hub, backend=backend)
        r = sh(launch_scripts.launch_script(spec))
        pid = int(scripts.parse_marker(r.stdout, "pid") or 0)
        assert r.returncode == 0 and pid, r.stdout + r.stderr
        self.pids.append(pid)
        return pid

    def reclaim(self, slug: str, claims=(), grace: float = 0, hub: str = HUB) -> subprocess.CompletedProcess:
        return sh(reclaim_script(f"{self.sessions}/{slug}", claims, ledger_dir=str(self.ledger), hub=hub,
                                 backend=BACKEND, grace=grace, shared=False, interrupt_timeout=2, term_timeout=1,
                                 kill_timeout=1))


@pytest.fixture
def host():
    d = Path(tempfile.mkdtemp(dir="/tmp", prefix="gso-"))
    h = Host(d)
    yield h
    for pid in h.pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    subprocess.run(["rm", "-rf", str(d)], check=False)


def orphans_of(inv: Inventory, known=(), in_flight=(), grace=0, hub=HUB):
    return find_orphans({"h": inv}, hub=hub, backend=BACKEND, known_sessions=known, in_flight=in_flight, grace=grace)


# --------------------------------------------------------------------------- the probe and the finder


def test_the_probe_lists_marked_sessions_and_the_claims_name_their_hub(host):
    gpu_pid = host.launch("alice-1")
    cpu_pid = host.launch("bob-1", gpus=0)
    (host.sessions / "unmarked-1").mkdir()  # made before sessions had owners: never listed
    inv = host.probe()
    assert inv.sessions_account == "root" and inv.sessions_root == str(host.sessions)
    assert sorted((d.name, d.pid, d.running, d.launching, d.hub, d.backend) for d in inv.sessions) == [
        ("alice-1", gpu_pid, True, False, HUB, BACKEND), ("bob-1", cpu_pid, True, False, HUB, BACKEND)]
    (claim,) = inv.entries
    assert (claim.state, claim.pid, claim.hub, claim.backend, claim.session) == (
        "held", gpu_pid, HUB, BACKEND, f"{host.sessions}/alice-1")
    owner = (host.sessions / "alice-1" / "owner").read_text().splitlines()
    assert owner[:2] == [f"hub={HUB}", f"backend={BACKEND}"] and owner[2] == f"host={os.uname().nodename}"


def test_what_is_an_orphan(host):
    host.launch("alice-1")
    host.launch("bob-1", gpus=0)
    host.launch("carol-1", hub="hub-b")  # another hub's, on the same account and ledger
    inv = host.probe()
    found = {o.session_dir.rsplit("/", 1)[1]: o for o in orphans_of(inv)}
    assert sorted(found) == ["alice-1", "bob-1"]
    assert found["alice-1"].claims == (inv.entries[0].name,) and found["alice-1"].account == "root"
    assert "runs, but no server this hub knows uses it" in found["bob-1"].why
    # what the hub knows, what it is launching, what is young, and a hub without an id: none
    assert orphans_of(inv, known=[f"{host.sessions}/alice-1", f"{host.sessions}/bob-1/"]) == []
    assert orphans_of(inv, in_flight=["alice-1", "bob-1"]) == []
    assert orphans_of(inv, grace=3600) == []
    assert orphans_of(inv, hub="") == []
    assert [o.session_dir for o in orphans_of(inv, hub="hub-b")] == [f"{host.sessions}/carol-1"]


def test_a_directory_several_hosts_list_is_reclaimed_once_where_its_claims_are():
    claim = LedgerEntry(name="k@1", uuids=("GPU-1",), state="held", account="gs", pid=7, age=99,
                        session="/r/s-1", hub=HUB, backend=BACKEND)
    listed = Inventory(sessions=(SessionDir("s-1", pid=7, running=True, age=99, hub=HUB, backend=BACKEND),),
                       sessions_account="gs", sessions_root="/r")
    found = find_orphans({"a": listed, "b": Inventory(entries=(claim,)), "c": listed}, hub=HUB, backend=BACKEND,
                         known_sessions=(), in_flight=(), grace=10)
    assert [(o.host, o.claims) for o in found] == [("b", ("k@1",))]
    # a launch script still running (no server yet) is left alone
    launching = Inventory(sessions=(SessionDir("s-2", launching=True, age=999, hub=HUB, backend=BACKEND),),
                          sessions_account="gs", sessions_root="/r")
    assert find_orphans({"a": launching}, hub=HUB, backend=BACKEND, known_sessions=(), in_flight=(), grace=10) == []


def test_placement_does_not_count_a_lost_server_of_the_same_session(host):
    host.launch("alice-1")
    inv = host.probe()
    (claim,) = inv.entries
    assert claim.uuids[0] in inv.claimed
    assert claim.uuids[0] not in inv.claimed_except(claim.entry, HUB)
    assert claim.uuids[0] in inv.claimed_except(claim.entry, "hub-b") | inv.claimed_except("other.x", HUB)


# --------------------------------------------------------------------------- reclaiming


def test_reclaim_stops_the_server_removes_the_session_and_frees_its_gpu(host):
    pid = host.launch("alice-1")
    inv = host.probe()
    (orphan,) = orphans_of(inv)
    r = host.reclaim("alice-1", orphan.claims)
    how, freed, held, left = parse_reclaim(r.stdout)
    assert (how, freed, held, left) == ("stopped INT", list(orphan.claims), [], None), r.stdout + r.stderr
    assert not alive(pid) and not (host.sessions / "alice-1").exists()
    assert list(host.ledger.iterdir()) == [] and len(host.probe().free()) == 2


def test_reclaim_leaves_alone_what_it_must_not_touch(host):
    pid = host.launch("alice-1")
    (claim,) = host.probe().entries
    # changed within the grace; another hub's mark
    assert parse_reclaim(host.reclaim("alice-1", [claim.name], grace=3600).stdout)[0].startswith("kept recent")
    assert parse_reclaim(host.reclaim("alice-1", [claim.name], hub="hub-b").stdout)[0] == "kept foreign"
    # a launch in progress: no server yet, its launch script (here: this test) still runs
    d = host.sessions / "dave-1"
    d.mkdir(mode=0o700)
    (d / "owner").write_text(f"hub={HUB}\nbackend={BACKEND}\n")
    (d / "launcher").write_text(f"{os.getpid()}\n")
    assert parse_reclaim(host.reclaim("dave-1").stdout)[0] == "kept launching"
    # stopped meanwhile (the look was older than the stop): nothing of it is left to reclaim,
    # and a claim file of the same name made since by another session is not its
    assert parse_reclaim(host.reclaim("gone-1", [claim.name]).stdout)[0] == "kept gone"
    assert alive(pid) and (host.sessions / "alice-1").is_dir() and (host.ledger / claim.name).exists()


def test_a_reused_pid_is_never_signalled_and_a_running_holder_keeps_its_gpu(host):
    pid = host.launch("alice-1")
    (claim,) = host.probe().entries
    # the session directory vanished (e.g. a /tmp cleaner) while its server runs: the claim stays
    subprocess.run(["rm", "-rf", str(host.sessions / "alice-1")], check=True)
    r = host.reclaim("alice-1", [claim.name])
    assert parse_reclaim(r.stdout) == ("stopped none", [], [f"{claim.name} held"], None), r.stdout
    assert alive(pid) and (host.ledger / claim.name).exists()
    # a pid file naming a live process that is not a server (no session of its own): not signalled
    other = subprocess.Popen(["sleep", "60"])
    try:
        d = host.sessions / "erin-1"
        d.mkdir(mode=0o700)
        (d / "owner").write_text(f"hub={HUB}\nbackend={BACKEND}\n")
        (d / "pid").write_text(f"{other.pid}\n")
        os.utime(d / "pid", (time.time() - 60, time.time() - 60))
        os.utime(d, (time.time() - 60, time.time() - 60))
        r = host.reclaim("erin-1", grace=30)
        assert parse_reclaim(r.stdout)[0] == "stopped none", r.stdout
        assert other.poll() is None and not d.exists()
        # a pid file saying 0 (kill -0 would hit the script's own process group): no signal at all
        d.mkdir(mode=0o700)
        (d / "owner").write_text(f"hub={HUB}\nbackend={BACKEND}\n")
        (d / "pid").write_text("0\n")
        r = host.reclaim("erin-1")
        assert parse_reclaim(r.stdout)[0] == "stopped none" and not d.exists(), r.stdout + r.stderr
    finally:
        other.kill()
        other.wait()


def test_reclaim_never_removes_a_directory_with_a_mount_left_in_it(host):
    """The reclaim stops the server and frees its GPU, but keeps the directory while anything
    is mounted below it (its data mounts are unmounted first, lazily when busy; this one, which
    the user made outside them, cannot be), so ``rm -rf`` never reaches a remote's files."""
    pid = host.launch("alice-1")
    mnt = host.sessions / "alice-1" / "mine"
    mnt.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "gso-test", str(mnt)], check=True)
    try:
        (mnt / "remote-file").write_text("must survive")
        (orphan,) = orphans_of(host.probe())
        how, freed, held, left = parse_reclaim(host.reclaim("alice-1", orphan.claims).stdout)
        assert (how, freed, held) == ("stopped INT", list(orphan.claims), []) and str(mnt) in (left or "")
        assert not alive(pid) and (mnt / "remote-file").read_text() == "must survive"
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_the_launch_script_marks_its_session_right_after_making_it():
    spec = launch_scripts.LaunchSpec(session_root="/tmp/gs", slug="alice-1", notebook_dir="~/nb", env={}, cmd=SERVER,
                              hub=HUB, backend=BACKEND)
    assert 'mkdir -m 700 "$S" || exit 10\n' + owner_lines(HUB, BACKEND) in launch_scripts.launch_script(spec)
    # without a hub id (a backend used outside a hub) nothing is marked: nothing is ever reclaimed
    unmarked = launch_scripts.launch_script(launch_scripts.LaunchSpec(session_root="/tmp/gs", slug="alice-1", notebook_dir="~/nb",
                                                        env={}, cmd=SERVER))
    assert "owner" not in unmarked and "launcher" not in unmarked
    assert sessions_lines("/tmp/gs") in probe_scripts.probe_script(SMI, "/l", session_root="/tmp/gs")
    assert "@@sessions" not in probe_scripts.probe_script(SMI, "/l")
