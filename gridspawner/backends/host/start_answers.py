"""PURE: what the launch script's and the wait script's answers mean for a launch (user-facing
errors naming the host; never the script, which holds the API token)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..base import BackendError
from . import scripts
from .mount_reports import mount_failure
from .launch_scripts import LaunchSpec
from .transport import RunResult


@dataclass(frozen=True)
class Started:
    """A launch script that started the server: its pid, the data link made in the notebook
    directory (None: none) and, with data mounts but no link, where the data is."""

    pid: int
    data_link: str | None
    data_dir: str | None = None


def leftover_pid(result: RunResult) -> int | None | bool:
    """False unless a server of this session still runs (``EXIT_BUSY``); then its pid (None
    when the script could not tell it)."""
    if result.exit_status != scripts.EXIT_BUSY:
        return False
    old = scripts.parse_marker(result.stdout, "busy")
    return int(old) if (old or "").isdigit() else None


def started(result: RunResult, spec: LaunchSpec, described: Sequence[str], host: str) -> Started:
    """The launch script's answer: the server it started, or the BackendError that says why
    none runs (a leftover server still running after it was stopped: the script's error)."""
    exit_status = result.exit_status
    if exit_status == scripts.EXIT_MOUNT:
        raise BackendError(mount_failure(result, spec.mounts, described, host))
    if exit_status == scripts.EXIT_CLAIM_LOST:
        raise BackendError(f"the GPU claim of this launch on {host} was removed before the server started "
                           f"({scripts.parse_marker(result.stdout, 'claim-lost')}); try again")
    if exit_status == scripts.EXIT_MOUNTS_LEFT:
        left = (scripts.parse_marker(result.stdout, "mounts-left") or "").strip()
        raise BackendError(f"a data mount of this server's previous run on {host} cannot be unmounted "
                           f"({left}); ask the hub admin to unmount it")
    pid = scripts.parse_marker(result.stdout, "pid")
    if exit_status != 0 or not (pid or "").isdigit():
        raise BackendError(f"could not start the server on {host}: {result.stderr.strip()[-500:] or f'exit {exit_status}'}")
    link = scripts.parse_marker(result.stdout, "data-link") or None
    data_dir = None
    if spec.mounts and not link:
        data_dir = scripts.parse_marker(result.stdout, "data-dir") or f"{spec.session_dir}/data"
    return Started(int(pid), link, data_dir)


def listening(result: RunResult) -> bool:
    """The wait script's answer: True when the server listens, False when it is still
    starting; raises BackendError (with the end of its log) when it died."""
    if scripts.parse_marker(result.stdout, "ready") is not None:
        return True
    if scripts.parse_marker(result.stdout, "dead") is not None:
        tail = result.stdout.split("@@dead", 1)[1].strip()
        raise BackendError("the server exited during start-up" + (f"; the end of its log:\n{tail}" if tail else ""))
    return False
