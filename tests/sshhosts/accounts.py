"""Real unprivileged accounts for tests (useradd), usable on every lab host: the hosts share
this machine's /etc/passwd, and the lab's sshd accepts the lab key for any account
(``AuthorizedKeysFile`` is the lab's file). Removed again, with their home directories and
any process they still run (killed by PID), when the context ends.

``run_as(name, *argv)`` runs a command as that account on this machine (the filesystem every
lab host shares), like a student with a shell on the host would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Iterator


def _pids_of(name: str) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "-u", name], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@contextlib.contextmanager
def unix_accounts(*names: str) -> Iterator[tuple[str, ...]]:
    """Create the accounts (home in /home, shell /bin/sh, no password but not locked: sshd
    without PAM refuses locked accounts); yield their names."""
    made = []
    try:
        for name in names:
            subprocess.run(["useradd", "-m", "-p", "*", "-s", "/bin/sh", name], check=True, capture_output=True)
            made.append(name)
        yield tuple(names)
    finally:
        for name in made:
            for pid in _pids_of(name):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            subprocess.run(["userdel", "-r", "-f", name], capture_output=True)


def run_as(name: str, *argv: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """``argv`` as account ``name`` (runuser), from /; never raises for a non-zero status."""
    return subprocess.run(["runuser", "-u", name, "--", *argv], input=input, capture_output=True, text=True,
                          cwd="/", timeout=timeout)
