"""The cgroup v1 hierarchies each slurmd of the lab gets for itself (see node_cgroups.sh)."""

from __future__ import annotations

import os
import time
from pathlib import Path

SYSFS = Path("/sys/fs/cgroup")
CONTROLLERS = ("freezer", "devices")
WRAPPER = Path(__file__).resolve().parent / "node_cgroups.sh"


def v1_available() -> str | None:
    """None when cgroup v1 freezer and devices hierarchies are mounted (task/cgroup and
    proctrack/cgroup can run), else why not."""
    for c in CONTROLLERS:
        if not os.path.ismount(SYSFS / c):
            return f"no cgroup v1 {c} hierarchy at {SYSFS / c} (Slurm's ConstrainDevices needs it here)"
    return None


def node_argv(tag: str, mountpoint: Path, hostname: str, argv: list[str]) -> list[str]:
    """``argv`` in the node's own cgroups (``/sys/fs/cgroup/*/TAG``) and hostname."""
    return ["sh", str(WRAPPER), tag, str(mountpoint), hostname, *argv]


def remove(tag: str, timeout: float = 5) -> list[str]:
    """Remove ``/sys/fs/cgroup/*/TAG`` and everything Slurm made below it, deepest first (the
    processes in them must be gone; a cgroup frees a few ms after its last task exits).
    Returns what could not be removed."""
    left: list[str] = []
    for c in CONTROLLERS:
        top = SYSFS / c / tag
        if not top.exists():
            continue
        dirs = sorted((Path(d) for d, _, _ in os.walk(top)), key=lambda p: len(p.parts), reverse=True)
        deadline = time.monotonic() + timeout
        for d in dirs:
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        left.append(str(d))
                        break
                    time.sleep(0.05)
    return left
