"""The on-host ledger shared by several remote accounts (``username: "{username}"``).

Each account writes its own entries into the sticky (1777) ledger directory, so one account
cannot remove another's stale entry; the claim script must then ignore it instead of
reporting a conflict forever. Runs the real claim script as two real accounts (root + one
made with useradd); skipped when not root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

import pytest

from gridspawner.backends.host import scripts

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd"), reason="needs root and useradd")

UUID = "GPU-00000000-1111-2222-3333-444444444444"


@pytest.fixture
def other_account():
    name = f"gsledger{os.getpid() % 100000}"
    subprocess.run(["useradd", "-M", "-s", "/bin/sh", name], check=True, capture_output=True)
    yield name
    subprocess.run(["userdel", name], capture_output=True)


def claim(ledger: str, entry: str, user: str | None, grace: float = 0) -> subprocess.CompletedProcess:
    script = scripts.claim_script(ledger, entry, [UUID], owner="test", user=user or "root", grace=grace)
    cmd = ["runuser", "-u", user, "--", "/bin/sh", "-s"] if user else ["/bin/sh", "-s"]
    return subprocess.run(cmd, input=script, capture_output=True, text=True, cwd="/")


def test_stale_entry_of_another_account_does_not_block_a_claim(other_account):
    top = tempfile.mkdtemp(dir="/tmp", prefix="gsledger-")
    os.chmod(top, 0o755)
    ledger = f"{top}/ledger"
    try:
        first = claim(ledger, "alice-1.aaaa", None)  # root's claim; its server never recorded a pid
        assert first.returncode == 0 and "@@claimed" in first.stdout, first
        # a fresh entry of root's still blocks the other account (grace not over)
        busy = claim(ledger, "bob-1.bbbb", other_account, grace=3600)
        assert busy.returncode == scripts.EXIT_CONFLICT and f"@@conflict {UUID}" in busy.stdout, busy
        time.sleep(1.1)  # stale = older than grace (whole seconds) and no live server
        # once stale, the other account cannot delete it (sticky dir) but may claim the GPU
        second = claim(ledger, "bob-1.bbbb", other_account, grace=0)
        assert second.returncode == 0 and "@@claimed" in second.stdout, second
        assert sorted(os.listdir(ledger)) == [".lock", "alice-1.aaaa", "bob-1.bbbb"]
        # and root's next claim removes its own stale entry, then sees bob's live one
        third = claim(ledger, "carol-1.cccc", None, grace=3600)
        assert third.returncode == scripts.EXIT_CONFLICT, third
    finally:
        shutil.rmtree(top, ignore_errors=True)
