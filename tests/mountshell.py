"""The host mount fragments (`gridspawner.mounts.hostcmd`) run in a real /bin/sh, and the
FUSE mounts found under a directory: shared by the mount tests that run without a backend
(tests/integration/test_mounts_host.py, test_mounts_ssh.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from gridspawner.mounts.hostcmd import unmount_fragment, wrap


def run(script: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``script`` (a fragment) wrapped as the launch script wraps it, on sh's stdin."""
    return subprocess.run(["/bin/sh", "-s"], input=wrap(script), capture_output=True, text=True, timeout=timeout)


def mounted_under(path: Path) -> list[str]:
    """Mount points at ``path`` or below it, from /proc/self/mountinfo."""
    p = str(path)
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4]
        if mp == p or mp.startswith(p + "/"):
            out.append(mp)
    return out


def unmount_everything(session: Path, root: Path) -> None:
    """After a test: the session's own unmount step, then a lazy unmount of anything left
    under ``root`` — a test must never leave a mount behind, whatever it did."""
    run(unmount_fragment(str(session)))
    for mp in mounted_under(root):
        subprocess.run(["umount", "-l", mp], check=False)
