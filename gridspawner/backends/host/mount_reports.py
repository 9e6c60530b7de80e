"""What the host scripts say about a server's data mounts when it goes, read into log lines.

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

from . import scripts

_PRINTABLE = re.compile(r"[^\x20-\x7e]")


@dataclass(frozen=True)
class MountCleanup:
    """The data-mount part of a clean-up's output."""

    mounts_left: str | None = None  # mount points still mounted (the directory was kept)
    unsaved_dir: str | None = None  # where writes not uploaded were kept
    unsaved_files: tuple[str, ...] = ()  # their remote paths (remote/bucket/prefix/file), at most 50


def parse_cleanup(stdout: str) -> MountCleanup:
    files = tuple(
        _PRINTABLE.sub("?", line[len("@@unsaved-file "):])
        for line in stdout.splitlines() if line.startswith("@@unsaved-file ")
    )
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
