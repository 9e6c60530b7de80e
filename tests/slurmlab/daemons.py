"""Start a daemon in a lab namespace in the foreground, wait until it answers, stop it by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class LabError(RuntimeError):
    """A piece of the lab did not start; the message carries the tail of its log."""


def tail(path: Path, limit: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


@dataclass
class Daemon:
    """One foreground daemon: its process (``ip netns exec NS argv``) and its log."""

    name: str
    proc: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``ready`` until it is true; the daemon exiting or ``timeout`` seconds passing
        raise LabError with its log."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise LabError(f"{self.name} exited ({self.proc.returncode}) before {what}:\n{tail(self.log)}")
            if ready():
                return
            if time.monotonic() > deadline:
                raise LabError(f"{self.name}: no {what} after {timeout} s:\n{tail(self.log)}")
            time.sleep(0.05)

    def stop(self, timeout: float = 5) -> None:
        """TERM, then KILL after ``timeout`` seconds (by PID: its own session's leader)."""
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start(name: str, netns: str | None, argv: list[str], log: Path, env: dict | None = None) -> Daemon:
    """Start ``argv`` (in network namespace ``netns`` when given) in its own session, output
    appended to ``log``. nsenter, not ``ip netns exec``: the latter mounts a fresh /sys, which
    hides /sys/fs/cgroup, and slurmd 22.05 refuses to start without its cgroup plugin."""
    prefix = ["nsenter", f"--net=/run/netns/{netns}", "--"] if netns else []
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [*prefix, *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    return Daemon(name=name, proc=proc, log=log)


def as_host(hostname: str, argv: list[str]) -> list[str]:
    """``argv`` in its own UTS namespace named ``hostname``: the daemons check that they run
    on the host slurm.conf names (SlurmctldHost, DbdHost), and a job's `hostname` is its
    node's name, as on a cluster."""
    return ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', hostname, *argv]


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
