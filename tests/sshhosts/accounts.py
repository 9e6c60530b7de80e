"""Real unprivileged accounts for tests (useradd), usable on every lab host: the hosts share
this machine's /etc/passwd, and the lab's sshd accepts the lab key for any account
(``AuthorizedKeysFile`` is the lab's file; call `SSHLab.open_to_accounts` first). Removed
again, with their home directories and any process they still run (killed by PID), when the
context ends.

``run_as(name, *argv)`` runs a command as that account on this machine (the filesystem every
lab host shares), like a student with a shell on the host would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from typing import Iterator


def _pids_of(name: str) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "-u", name], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def account_command(argv: list[str], check: bool = True, tries: int = 20) -> subprocess.CompletedProcess:
    """useradd/userdel, retried while another test run holds the lock of /etc/passwd or
    /etc/group ("cannot lock ...; try again later"); RuntimeError when it fails (``check``)."""
    for _ in range(tries):
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode == 0 or "lock" not in r.stderr:
            break
        time.sleep(0.25)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip()}")
    return r


def add_account(name: str, shell: str = "/bin/sh") -> None:
    """An account with a home in /home and no password — but not a locked one (password
    ``*``): sshd without PAM refuses locked accounts."""
    account_command(["useradd", "-m", "-s", shell, "-p", "*", name])


@contextlib.contextmanager
def unix_accounts(*names: str) -> Iterator[tuple[str, ...]]:
    """Create the accounts (`add_account`); yield their names."""
    made = []
    try:
        for name in names:
            add_account(name)
            made.append(name)
        yield tuple(names)
    finally:
        for name in made:
            for pid in _pids_of(name):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            account_command(["userdel", "-r", "-f", name], check=False)


def run_as(name: str, *argv: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """``argv`` as account ``name`` (runuser), from /; never raises for a non-zero status."""
    return subprocess.run(["runuser", "-u", name, "--", *argv], input=input, capture_output=True, text=True,
                          cwd="/", timeout=timeout)


def let_accounts_run(*paths: str) -> None:
    """Make the directories above ``paths`` (and their symlinks' targets: the test's Python,
    often under root's 0700 home) traversable by other accounts (``o+x``, never readable),
    so a server running as a test account can start the same interpreter and packages."""
    import sys

    for path in (*paths, sys.executable, os.path.realpath(sys.executable), sys.prefix, sys.base_prefix):
        d = os.path.dirname(os.path.abspath(path))
        while d not in ("/", ""):
            mode = os.stat(d).st_mode
            if not mode & 0o001:
                os.chmod(d, (mode & 0o7777) | 0o001)
            d = os.path.dirname(d)


def run_prefix() -> str:
    """A prefix for the accounts one test run makes (``gs<6 hex>-``: unique, short)."""
    return f"gs{os.urandom(3).hex()}-"


def remove_accounts(prefix: str) -> None:
    """Remove every account whose name starts with ``prefix`` (a `run_prefix`), killing its
    processes (by PID) first — the accounts a backend made with ``create_accounts``."""
    import pwd

    for pw in pwd.getpwall():
        if pw.pw_name.startswith(prefix):
            for pid in _pids_of(pw.pw_name):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            account_command(["userdel", "-r", "-f", pw.pw_name], check=False)


def let_accounts_use_fuse() -> None:
    """``/dev/fuse`` as a standard Linux host has it (0666: any account may make its own FUSE
    mounts through the setuid ``fusermount3``); some containers make it root's alone."""
    if os.path.exists("/dev/fuse") and os.stat("/dev/fuse").st_mode & 0o666 != 0o666:
        os.chmod("/dev/fuse", 0o666)
