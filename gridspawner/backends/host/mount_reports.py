"""What the host backend says about data mounts: how a mount is described in progress
messages and errors (`describe_mount`, `mount_failure`), and what the host scripts report
about a server's data mounts when it goes, read into log lines (`log_cleanup`).

The clean-up step of every script that removes a session directory (stop, poll finding a
server gone, a failed launch; `scripts.remove_session_func`) prints:

- ``@@mounts-left <paths>``: a mount could not be unmounted, so the directory was kept;
- ``@@unsaved <dir>`` and ``@@unsaved-file <remote path>`` lines: writes a mount had not
  uploaded within the backend's ``flush_timeout`` — their cache was moved to ``<dir>``
  (``<session root>/unsaved/<session>-<time>``) instead of being deleted.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from ...mounts.resolved import ResolvedMount, S3Source
from . import scripts
from .transport import RunResult

if TYPE_CHECKING:
    from ...request import LaunchRequest

_PRINTABLE = re.compile(r"[^\x20-\x7e]")


@dataclass(frozen=True)
class MountCleanup:
    """The data-mount part of a clean-up's output."""

    mounts_left: str | None = None  # mount points still mounted (the directory was kept)
    unsaved_dir: str | None = None  # where writes not uploaded were kept
    unsaved_files: tuple[str, ...] = ()  # their remote paths (remote/bucket/prefix/file), at most 50


def parse_cleanup(stdout: str) -> MountCleanup:
    files = tuple(_PRINTABLE.sub("?", f) for f in markers(stdout, "unsaved-file"))
    left = scripts.parse_marker(stdout, "mounts-left")
    unsaved = scripts.parse_marker(stdout, "unsaved")
    return MountCleanup(mounts_left=left.strip() if left is not None else None,
                        unsaved_dir=unsaved or None, unsaved_files=files)


def log_cleanup(log: logging.Logger, host: str, session_dir: str, stdout: str, flush_timeout: float) -> MountCleanup:
    """Log what the clean-up kept (errors: an admin must act). Returns what it parsed."""
    found = parse_cleanup(stdout)
    if found.unsaved_dir:
        shown = ", ".join(found.unsaved_files[:10]) + (" …" if len(found.unsaved_files) > 10 else "")
        log.error(
            "%s on %s: data written to a mount was not uploaded within flush_timeout (%g s); the "
            "writes were KEPT in %s on %s (rclone's cache: the files are under vfs/, %d file%s: %s) — upload "
            "them from there (e.g. rclone copy) or delete the directory once they are safe",
            session_dir, host, flush_timeout, found.unsaved_dir, host, len(found.unsaved_files),
            "" if len(found.unsaved_files) == 1 else "s", shown or "?",
        )
    if found.mounts_left is not None:
        log.error("%s on %s: data mounts could not be unmounted (%s); the session directory was kept "
                  "so its remote files stay safe — unmount them by hand", session_dir, host, found.mounts_left)
    return found


def markers(stdout: str, marker: str) -> list[str]:
    """The values of every ``@@<marker> <value>`` line."""
    return [ln[len(marker) + 3:].strip() for ln in stdout.splitlines() if ln.startswith(f"@@{marker} ")]


def spec_of(request: LaunchRequest, index: int) -> Any:
    """The request's mount spec ``index`` (the order of ``ctx.mounts``); None: none."""
    specs = request.mounts
    return specs[index] if 0 <= index < len(specs) else None


def describe_mount(m: ResolvedMount, spec: Any, data_name: str = "data") -> str:
    """``s3 campus:lab-data/alice/run1 → data/run1`` — what a mount is, for progress
    messages and errors (never a secret). ``spec``: the request's `MountSpec` (for the
    admin's endpoint / host name), or None."""
    src = m.source
    if isinstance(src, S3Source):
        endpoint = getattr(spec, "endpoint", None)
        text = f"s3 {endpoint + ':' if endpoint else ''}{src.bucket}/{src.prefix}".rstrip("/")
    else:
        text = f"ssh {getattr(spec, 'host', None) or src.address}:{src.path}"
    text += f" → {data_name}/{m.target}"
    return text + (" (read-only)" if m.read_only and m.mode == "mount" else "")


def mount_failure(result: RunResult, mounts: Sequence[ResolvedMount], described: Sequence[str], host: str) -> str:
    """The user-facing message of a launch whose mount step failed (exit EXIT_MOUNT)."""
    marker = scripts.parse_marker(result.stdout, "mount-failed")
    tail = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("still mounted")][-8:]
    log = "\n".join(tail)[-800:]
    index = int(marker) if marker and marker.lstrip("-").isdigit() else None
    pos = next((k for k, m in enumerate(mounts) if m.index == index), None)
    if pos is None:
        what = f"preparing the data directory on {host}"
    else:
        what = f"mount {index + 1} ({described[pos] if pos < len(described) else mounts[pos].target}) on {host}"
    return f"{what} failed" + (f": {log}" if log else "")
