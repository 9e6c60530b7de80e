"""The on-host ledger shared by several accounts (``username: "{username}"``): the claim
script run as two real accounts (root + one made with useradd) in a root-made sticky ledger.
One account can neither delete nor alter the other's claim, yet a claim of the other that
went stale does not block it. Skipped when not root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

from gridspawner.backends.host import ledger, ledger_claim

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd"), reason="needs root and useradd")

UUID = "GPU-00000000-1111-2222-3333-444444444444"


@pytest.fixture
def other_account():
    name = f"gsledger{os.getpid() % 100000}"
    subprocess.run(["useradd", "-M", "-s", "/bin/sh", name], check=True, capture_output=True)
    yield name
    subprocess.run(["userdel", name], capture_output=True)


@pytest.fixture
def shared_ledger():
    top = tempfile.mkdtemp(dir="/tmp", prefix="gsledger-")
    os.chmod(top, 0o755)
    d = f"{top}/ledger"
    os.mkdir(d)
    os.chmod(d, 0o1777)  # what the admin makes: root's, sticky
    yield d
    shutil.rmtree(top, ignore_errors=True)


def as_user(user: str | None, script: str) -> subprocess.CompletedProcess:
    cmd = ["runuser", "-u", user, "--", "/bin/sh", "-s"] if user else ["/bin/sh", "-s"]
    return subprocess.run(cmd, input=script, capture_output=True, text=True, cwd="/")


def claim(d: str, entry: str, user: str | None, grace: float = 0) -> subprocess.CompletedProcess:
    return as_user(user, ledger_claim.claim_script(d, entry, [UUID], session_dir=f"/s/{entry}", owner="test",
                                             user=user or "root", grace=grace, shared=True))


def test_another_accounts_claim_cannot_be_removed_or_changed_but_a_stale_one_does_not_block(shared_ledger, other_account):
    d = shared_ledger
    first = claim(d, "alice-1.aaaa", None, grace=3600)  # root's claim; its server never took it over
    assert first.returncode == 0, first
    (name,) = ledger_claim.claimed_files(first.stdout)
    path = f"{d}/{name}"
    before = open(path).read()
    # the other account can neither delete, rename, overwrite nor append to it
    for attack in (f"rm -f {path}", f"mv {path} {d}/x", f"echo hold=1 >{path}", f"echo hold=1 >>{path}",
                   f"chmod 666 {path}"):
        as_user(other_account, attack + "\n")
        assert os.path.exists(path) and open(path).read() == before, attack
    # while root's claim is fresh, the other account's claim of that GPU is refused
    busy = claim(d, "bob-1.bbbb", other_account, grace=3600)
    assert busy.returncode == ledger.EXIT_CONFLICT and f"@@conflict {UUID}" in busy.stdout, busy
    # once it is stale (grace 0, no live holder), the other account may claim the GPU: it
    # cannot remove root's file (sticky), so it takes the next slot
    second = claim(d, "bob-1.bbbb", other_account, grace=0)
    assert second.returncode == 0, second
    assert ledger_claim.claimed_files(second.stdout) == (f"{ledger.gpu_key(UUID)}@2",)
    assert sorted(os.listdir(d)) == [name, f"{ledger.gpu_key(UUID)}@2"]
    # root's next claim (grace 0: both are stale) removes root's own stale file, never the
    # other account's, and reuses the freed slot
    third = claim(d, "carol-1.cccc", None, grace=0)
    assert third.returncode == 0, third
    assert ledger_claim.claimed_files(third.stdout) == (name,)
    assert "entry=carol-1.cccc\n" in open(path).read()
    assert "entry=bob-1.bbbb\n" in open(f"{d}/{ledger.gpu_key(UUID)}@2").read()
