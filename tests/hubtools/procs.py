"""Small /proc helpers: find the processes a test hub started, read their environment."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def all_command_lines() -> str:
    """Every process's full argv, one line each — what `ps` would show, but never cut to the
    terminal width (`ps -eo args` truncates at 80 columns when $COLUMNS says so, which made a
    "token not in argv" check look only at the first 80 characters)."""
    return "\n".join(" ".join(cmdline(pid)) for pid in pids())


def environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        if b"=" in item:
            k, _, v = item.partition(b"=")
            env[k.decode(errors="replace")] = v.decode(errors="replace")
    return env


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def matching(*, env_equals: dict[str, str] | None = None, cmd_contains: str | None = None) -> list[int]:
    """Processes (other than this one) whose environment has all of ``env_equals`` or whose
    command line contains ``cmd_contains``."""
    me = os.getpid()
    found = []
    for pid in pids():
        if pid == me or not alive(pid):
            continue
        if cmd_contains and any(cmd_contains in a for a in cmdline(pid)):
            found.append(pid)
            continue
        if env_equals:
            env = environ(pid)
            if env and all(env.get(k) == v for k, v in env_equals.items()):
                found.append(pid)
    return found


def terminate(pids_: list[int], timeout: float = 10.0) -> None:
    """TERM, wait up to ``timeout``, then KILL — each of the given PIDs only."""
    for pid in pids_:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids_):
        time.sleep(0.1)
    for pid in pids_:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
