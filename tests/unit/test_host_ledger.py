"""The on-host GPU ledger (`gridspawner.backends.host.ledger`): its sh code run by /bin/sh
against a temp directory, and what the probe's output and an unsafe directory mean.

One account here (the test's); tests/unit/test_ssh_ledger_accounts.py and
tests/integration/test_ssh_ledger_attacks.py run it as several real accounts.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from gridspawner.backends.host import ledger, ledger_claim, ledger_hold, ledger_problems, probe_scripts, scripts
from gridspawner.backends.host.inventory import LedgerEntry, parse_claim, parse_probe
from gridspawner.backends.host.ledger import gpu_key
from gridspawner.backends.host.ledger_problems import LedgerProblem
from gridspawner.gpu import GPU

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FAKE_SMI = str(FIXTURES / "fake_nvidia_smi")


def sh(script: str, timeout: float = 30) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run(["/bin/sh", "-s"], input=script, capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(dir="/tmp", prefix="gsl-")
    os.chmod(d, 0o755)
    yield Path(d)
    subprocess.run(["rm", "-rf", d], check=False)


def claim(tmp, entry, uuids, grace=120, user="u", shared=False, ledger_dir=None):
    return sh(ledger_claim.claim_script(str(ledger_dir or tmp / "l"), entry, uuids, session_dir=f"/s/{entry}",
                                  owner="test", user=user, grace=grace, shared=shared))


def files(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def start_of(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


# --------------------------------------------------------------------------- pure parts


def test_gpu_key_matches_the_sh_side():
    for uuid in ("GPU-8f1d0a3e-1111-2222-3333-444455556666", "MIG-GPU-8f1d/1/0", "MIG-7e1a2b3c-aaaa", "ä x;$(id)"):
        out = sh(f"printf '%s' {scripts.q(uuid)} | tr -c 'A-Za-z0-9-' '_'").stdout
        assert gpu_key(uuid) == out
    assert gpu_key("MIG-GPU-8f1d/1/0") == "MIG-GPU-8f1d_1_0"


def test_parse_probe_claims_states_and_problems():
    out = (
        "@@gpus 0\n"
        "0, GPU-a, Tesla T4, 15360, 3\n"
        "1, GPU-b, NVIDIA A10, 23028, 0\n"
        "2, MIG-GPU-c/1/0, A100 1g.10gb, 9728, 0\n"
        "@@ledger ok\n"
        "@@claim GPU-b@1 held alice 1234 60\n"
        "uuid=GPU-b\nentry=alice-1.x\nsession=/tmp/gs-alice/alice-1\nuser=alice\nowner=root@h backend here\n"
        "@@claim GPU-a@2 stale bob - 900\n"
        "uuid=GPU-a\n"
        "@@claim MIG-GPU-c_1_0@1 pending carol - 3\n"
        "@@claim old-1.abcd1234 held dave 77 5000\n"
        "uuid=GPU-a\npid=77\n"
        "@@end\n"
    )
    inv = parse_probe(out)
    assert inv.gpus[1] == GPU(1, "GPU-b", "NVIDIA A10", 23028, 0)
    assert inv.entries[0] == LedgerEntry("GPU-b@1", ("GPU-b",), "held", "alice", 1234, 60, "alice-1.x",
                                         "/tmp/gs-alice/alice-1", "alice", "root@h backend here")
    assert [(e.name, e.uuids, e.state) for e in inv.entries[1:]] == [
        ("GPU-a@2", ("GPU-a",), "stale"),
        ("MIG-GPU-c_1_0@1", ("MIG-GPU-c/1/0",), "pending"),  # the key maps back to the MIG UUID
        ("old-1.abcd1234", ("GPU-a",), "held"),  # an old one-file entry: its uuid lines
    ]
    assert inv.claimed == frozenset({"GPU-b", "MIG-GPU-c/1/0", "GPU-a"})
    assert inv.ledger_problem is None
    # a stale claim does not block; a flooded GPU does; "*": every GPU
    base = out.replace("@@claim old-1.abcd1234 held dave 77 5000\nuuid=GPU-a\npid=77\n", "")
    assert parse_probe(base).claimed == frozenset({"GPU-b", "MIG-GPU-c/1/0"})
    assert parse_probe(base.replace("@@end", "@@flooded GPU-a 65\n@@end")).claimed == {"GPU-a", "GPU-b", "MIG-GPU-c/1/0"}
    assert len(parse_probe(base.replace("@@end", "@@flooded * 257\n@@end")).free()) == 0
    unsafe = parse_probe("@@gpus missing\n@@ledger unsafe owner /tmp/gridspawner-ledger eve jupyter\n@@end\n")
    assert unsafe.ledger_problem == LedgerProblem("owner", "/tmp/gridspawner-ledger", "eve", "jupyter")


def test_parse_claim_tolerates_junk():
    e = parse_claim("x@1 held", ["garbage", "uuid=GPU-1", "", "entry=", "user=a=b"], {"x": "GPU-x"})
    assert (e.name, e.uuids, e.state, e.account, e.pid, e.user) == ("x@1", ("GPU-x",), "held", "?", None, "a=b")


def test_problem_messages_give_the_exact_fix():
    def msg(kind, shared=False, path="/tmp/gridspawner-ledger"):
        return ledger_problems.problem_message("gpu1", "/tmp/gridspawner-ledger", LedgerProblem(kind, path, "eve", "jupyter"),
                                      shared=shared)

    assert "install -d -o root -g root -m 1777 /tmp/gridspawner-ledger" in msg("missing", shared=True)
    text = msg("owner")
    assert "owned by eve, not by root or jupyter" in text
    assert "as root on gpu1: chown root:root /tmp/gridspawner-ledger && chmod 1777 /tmp/gridspawner-ledger" in text
    assert "not by root, so eve" in msg("owner", shared=True)
    assert "chmod +t /tmp/gridspawner-ledger" in msg("mode")
    assert "rm -f /tmp/gridspawner-ledger && install -d" in msg("symlink")
    assert "parent directory /tmp/x is owned by eve" in msg("parent-owner", path="/tmp/x")
    for kind in ("missing", "owner", "mode", "symlink", "notdir", "parent-owner", "parent-mode", "cannot-create"):
        assert msg(kind).startswith("the GPU ledger /tmp/gridspawner-ledger on gpu1 is not safe to use: "), kind
        assert "No GPU is handed out on gpu1 until it is fixed" in msg(kind)


# --------------------------------------------------------------------------- the claim script


def test_claim_makes_a_private_ledger_and_one_file_per_gpu(tmp):
    r = claim(tmp, "a-1.x", ["GPU-2", "GPU-1"])
    assert (r.returncode, r.stdout) == (0, "@@claimed GPU-1@1 GPU-2@1\n"), r.stderr
    assert ledger_claim.claimed_files(r.stdout) == ("GPU-1@1", "GPU-2@1")
    d = tmp / "l"
    assert oct(d.stat().st_mode & 0o7777) == "0o700" and files(d) == ["GPU-1@1", "GPU-2@1"]
    assert oct((d / "GPU-1@1").stat().st_mode & 0o777) == "0o644"
    lines = (d / "GPU-1@1").read_text().splitlines()
    assert lines[:5] == ["uuid=GPU-1", "entry=a-1.x", "session=/s/a-1.x", "user=u", "owner=test"]
    assert lines[5].startswith("created=") and lines[6].startswith("hold=")
    # another session wanting GPU-2 is refused, and leaves nothing (GPU-1 < GPU-2: it made nothing)
    r = claim(tmp, "b-1.x", ["GPU-3", "GPU-2"])
    assert r.returncode == ledger.EXIT_CONFLICT and "@@conflict GPU-2" in r.stdout
    assert files(d) == ["GPU-1@1", "GPU-2@1"]
    # a retried launch of the same session does not conflict with its own claim
    r = claim(tmp, "a-1.x", ["GPU-2"])
    assert r.returncode == 0 and r.stdout == "@@claimed GPU-2@2\n"
    # a shared ledger (several accounts) that does not exist is never made by an account
    r = claim(tmp, "c-1.x", ["GPU-9"], shared=True, ledger_dir=tmp / "shared")
    assert r.returncode == ledger.EXIT_LEDGER and r.stdout.startswith(f"@@ledger-unsafe missing {tmp}/shared - ")
    assert not (tmp / "shared").exists()


def test_claim_states_decide_who_holds_a_gpu(tmp):
    d = tmp / "l"
    d.mkdir(mode=0o700)
    me = os.getpid()
    (d / "GPU-1@1").write_text(f"uuid=GPU-1\nentry=e1\nhold={dead_pid()} 1\n")  # its holder died
    (d / "GPU-2@1").write_text(f"uuid=GPU-2\nentry=e2\nhold={me} {start_of(me)}\n")  # its holder runs
    (d / "GPU-3@1").write_text(f"uuid=GPU-3\nentry=e3\nhold={me} 1\n")  # a reused pid: not its holder
    (d / "GPU-4@1").write_text("uuid=GPU-9\nentry=e4\n")  # says it is another GPU: forged
    (d / "GPU-5@1").write_text("uuid=GPU-5\nentry=e5\n")  # no holder yet: pending for `grace`
    (d / "old-1.abcd").write_text(f"created=1\nuuid=GPU-6\npid={me}\n")  # the earlier one-file format
    # the state of each file, as the probe and the claim script judge it
    states = sh(
        ledger.prelude(str(d), shared=False, grace=60)
        + "".join(f'set -- $(gs_state "$L/GPU-{i}@1" GPU-{i}); echo "{i} $1"\n' for i in range(1, 6))
        + 'set -- $(gs_state "$L/old-1.abcd" ""); echo "6 $1"\n'
    ).stdout.split("\n")
    assert states[:6] == ["1 pending", "2 held", "3 pending", "4 forged", "5 pending", "6 held"]
    # with no grace left, a claim without a live holder is stale and its GPU can be claimed;
    # our own stale files are removed on the way
    for gpu in ("GPU-1", "GPU-3", "GPU-4", "GPU-5"):
        r = claim(tmp, f"new-{gpu}", [gpu], grace=0)
        assert r.returncode == 0, (gpu, r.stdout, r.stderr)
    for gpu in ("GPU-2", "GPU-6"):
        r = claim(tmp, f"new-{gpu}", [gpu], grace=0)
        assert r.returncode == ledger.EXIT_CONFLICT, (gpu, r.stdout)
    # our own stale file was removed and its slot reused; a forged file is left alone (ignored)
    assert "entry=new-GPU-1\n" in (d / "GPU-1@1").read_text()
    assert "entry=e4\n" in (d / "GPU-4@1").read_text() and "entry=new-GPU-4\n" in (d / "GPU-4@2").read_text()


def test_probe_lists_the_claims_of_the_gpus_it_found(tmp):
    smi = ("env", "FAKE_NVIDIA_SMI_GPUS=Tesla T4,15360;NVIDIA A10,23028", FAKE_SMI)
    inv = parse_probe(sh(probe_scripts.probe_script(smi, str(tmp / "l"))).stdout)
    t4, a10 = inv.gpus
    assert claim(tmp, "a-1.x", [a10.uuid], user="alice").returncode == 0
    (tmp / "l" / "zzz@1").write_text("uuid=nothing-we-have\n")  # a GPU this host does not have: not listed
    inv = parse_probe(sh(probe_scripts.probe_script(smi, str(tmp / "l"))).stdout)
    (entry,) = inv.entries
    assert (entry.name, entry.uuids, entry.state, entry.account, entry.user, entry.entry) == (
        f"{gpu_key(a10.uuid)}@1", (a10.uuid,), "pending", "root", "alice", "a-1.x")
    assert inv.free() == (t4,)
    # a server started before the per-GPU ledger (one file per server, pid= lines) keeps its GPU
    (tmp / "l" / "old-1.abcd1234").write_text(f"owner=o\nuser=bob\ncreated=1\nuuid={t4.uuid}\npid={os.getpid()}\n")
    inv = parse_probe(sh(probe_scripts.probe_script(smi, str(tmp / "l"))).stdout)
    assert [(e.name, e.uuids, e.state, e.user) for e in inv.entries][1] == ("old-1.abcd1234", (t4.uuid,), "held", "bob")
    assert inv.free() == ()
    assert claim(tmp, "c-1.x", [t4.uuid]).returncode == ledger.EXIT_CONFLICT


def test_concurrent_claims_never_share_a_gpu(tmp):
    """Separate processes (as separate hubs would run them), no lock: exactly one wins."""
    for round_ in range(3):
        procs = [
            subprocess.Popen(["/bin/sh", "-s"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(8)
        ]
        for i, p in enumerate(procs):
            p.stdin.write(ledger_claim.claim_script(str(tmp / "l"), f"s{round_}-{i}.x", [f"GPU-A{round_}", f"GPU-{round_}-{i}"],
                                              session_dir="/s", owner="t", user="u", grace=60, shared=False))
            p.stdin.close()
        codes = [p.wait(30) for p in procs]
        assert codes.count(0) == 1 and codes.count(ledger.EXIT_CONFLICT) == 7, codes
        holders = [f for f in (tmp / "l").iterdir() if f"uuid=GPU-A{round_}\n" in f.read_text()]
        assert len(holders) == 1


def test_a_flooded_gpu_counts_as_taken(tmp):
    d = tmp / "l"
    d.mkdir(mode=0o700)
    for i in range(1, ledger.MAX_SLOTS + 2):
        (d / f"GPU-1@{i}").write_text("junk\n")
    old = time.time() - 3600
    for f in d.iterdir():
        os.utime(f, (old, old))
    r = claim(tmp, "a.x", ["GPU-1"], grace=0)
    assert r.returncode == ledger.EXIT_CONFLICT


def test_take_over_and_hold_lines_need_the_claim_to_be_ours(tmp):
    assert claim(tmp, "a-1.x", ["GPU-1"]).returncode == 0
    d = tmp / "l"
    take = ledger_hold.take_over_lines(str(d), "a-1.x", ["GPU-1@1"])
    r = sh(take + "pid=$$\n" + ledger_hold.hold_lines(str(d), ["GPU-1@1"]) + "echo ok\n")
    assert r.stdout == "ok\n", r
    holds = [ln for ln in (d / "GPU-1@1").read_text().splitlines() if ln.startswith("hold=")]
    assert len(holds) == 3 and all(len(h.split()) == 2 for h in holds)
    # another session's claim, or a missing one: lost
    r = sh(ledger_hold.take_over_lines(str(d), "b-1.x", ["GPU-1@1"]) + "echo ok\n")
    assert r.returncode == ledger.EXIT_CLAIM_LOST and "@@claim-lost GPU-1@1" in r.stdout
    (d / "GPU-1@1").unlink()
    r = sh(take + "echo ok\n")
    assert r.returncode == ledger.EXIT_CLAIM_LOST and not (d / "GPU-1@1").exists()


def test_free_dead_claims_keeps_live_ones(tmp):
    assert claim(tmp, "a-1.x", ["GPU-1"]).returncode == 0
    d = tmp / "l"
    (d / "GPU-2@1").write_text(f"uuid=GPU-2\nentry=b\nhold={dead_pid()} 1\n")
    r = sh(ledger_hold.free_dead_claims_script(str(d), ["GPU-1@1", "GPU-2@1", "../etc"], grace=0, shared=False))
    # GPU-1's holder (the claim script) is gone too; grace 0: both are dead
    assert "@@freed GPU-1@1" in r.stdout and "@@freed GPU-2@1" in r.stdout and files(d) == []
    assert claim(tmp, "a-1.x", ["GPU-1"]).returncode == 0
    r = sh(ledger_hold.free_dead_claims_script(str(d), ["GPU-1@1"], grace=3600, shared=False))
    assert r.stdout == "@@kept GPU-1@1 pending\n" and files(d) == ["GPU-1@1"]


@pytest.mark.parametrize("make, kind", [
    (lambda d: d.symlink_to("/tmp"), "symlink"),
    (lambda d: d.write_text(""), "notdir"),
    (lambda d: (d.mkdir(), os.chmod(d, 0o777)), "mode"),
])
def test_an_unsafe_ledger_is_refused_and_never_used(tmp, make, kind):
    d = tmp / "l"
    make(d)
    r = claim(tmp, "a.x", ["GPU-1"])
    assert r.returncode == ledger.EXIT_LEDGER and r.stdout.startswith(f"@@ledger-unsafe {kind} {d} "), r.stdout
    smi = ("/nonexistent/nvidia-smi",)
    inv = parse_probe(sh(probe_scripts.probe_script(smi, str(d))).stdout)
    assert inv.ledger_problem is not None and inv.ledger_problem.kind == kind


def test_an_unsafe_parent_is_refused(tmp):
    os.chmod(tmp, 0o777)  # anyone could rename the ledger away and put their own in its place
    r = claim(tmp, "a.x", ["GPU-1"])
    assert r.returncode == ledger.EXIT_LEDGER and r.stdout.startswith(f"@@ledger-unsafe parent-mode {tmp} ")
    os.chmod(tmp, 0o1777)  # sticky: only owners may rename
    assert claim(tmp, "a.x", ["GPU-1"]).returncode == 0


def test_hostile_values_run_nothing(tmp):
    canary = tmp / "canary"
    values = ["$(touch {c})", "`touch {c}`", "x; touch {c}", "a\nb\ntouch {c}\n", "' ; touch {c} ; '", "-e"]
    for i, v in enumerate(values):
        v = v.format(c=canary)
        r = sh(ledger_claim.claim_script(str(tmp / "l d"), v, [v], session_dir=v, owner=v, user=v, grace=60, shared=False))
        assert r.returncode == 0, r.stderr
        assert not canary.exists(), v
        (name,) = ledger_claim.claimed_files(r.stdout)
        text = (tmp / "l d" / name).read_text()
        assert text.count("\n") == 7  # a newline in a value cannot add a line (a forged hold=)
