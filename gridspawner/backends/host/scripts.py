"""The shared pieces of the sh scripts the host backend runs, the cleanup and stop scripts,
and the parser of what every script prints (``@@<marker> <value>`` lines). The other rooms:
`launch_scripts` (a server's launch, and the session set-up batch jobs share) and
`probe_scripts` (the GPU probe, the wait for a server's socket, the poll).

Every script is sent on stdin of ``/bin/sh -s`` (locally or over SSH), so a secret in it
(the API token in the launch script) never appears in an argv, a file or a log: **never log a
script**. Every value is ``shlex.quote``d; the only unquoted text is the admin's image
``prefix`` (trusted shell, like a Dockerfile). Scripts are POSIX sh (dash, busybox ash,
bash): ``flock``, ``setsid`` and a fractional ``sleep`` are the only non-POSIX tools used.

Each body is wrapped in ``{ … } </dev/null`` (`ledger.wrap`): the shell parses the whole
script before running any of it, and no command can read the rest of the script from stdin.

Data mounts: the launch script runs `hostcmd.mount_fragment` right after it made the 0700
session directory (FUSE mounts / copies into ``$S/data/<target>``, credentials in 0600 files
in ``$S/.mounts``). Every script that removes a session directory does it through
``remove_session``: unmount first (`hostcmd.unmount_fragment`), and ``rm -rf`` only when no
mount point is left anywhere below it — a ``rm -rf`` that walks into a live FUSE mount would
delete the bucket's or the storage server's files.

Ledger: claim files per GPU in ``ledger_dir``, made and judged by the sh code of `ledger`
(see there for who may change what); the launch script takes its claims over at once and hands
them to the server's process, poll and stop scripts remove them (`ledger_hold`).
"""

from __future__ import annotations

import hashlib
import math
import re
import shlex
from typing import Iterable, Mapping, Sequence

from ...gpu import GPU
from ...mounts import hostcmd
from ...mounts.hostcmd import EXIT_MOUNT
from ...mounts.resolved import S3Secret
from .confine import AS_ACCOUNT, EXIT_LIMITS, as_account_script, remove_cgroup_lines
from .ledger import EXIT_CLAIM_LOST, EXIT_CONFLICT, EXIT_LEDGER, wrap
from .ledger_hold import release_lines

q = shlex.quote

SOCKET_NAME = "jupyter.sock"
#: exit statuses the scripts use to say what went wrong (the claim script's: `ledger`)
EXIT_ROOT = 10  # launch: the session root is not a private directory of ours
EXIT_BUSY = 11  # launch: a server of this session is still running
EXIT_NOTEBOOK_DIR = 12  # launch: the notebook directory cannot be created / entered
EXIT_NO_START = 13  # launch: the server process did not start
# EXIT_MOUNT (14, from hostcmd): launch: a data mount failed (``@@mount-failed <index>``)
EXIT_MOUNTS_LEFT = 15  # launch: a mount of an earlier server of this session cannot be unmounted
# EXIT_CLAIM_LOST (16, from ledger): launch: a GPU claim of this launch is gone (``@@claim-lost``)
# EXIT_LIMITS (17, from confine): launch: the CPU / memory limits cannot be applied (``@@limits-failed``)
__all__ = ["EXIT_CLAIM_LOST", "EXIT_CONFLICT", "EXIT_LEDGER", "EXIT_LIMITS", "EXIT_MOUNT", "wrap"]  # re-exported

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,62}")

#: sh functions shared by the scripts. ``alive PID``: the process exists and is no zombie
#: (an orphan may wait long for a reaper in a container). ``group_alive PGID``: any process
#: of the group exists. ``nap``: 0.1 s.
SH_FUNCS = r"""alive() {
  [ -n "$1" ] || return 1
  if [ -r "/proc/$1/stat" ]; then
    case "$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null)" in Z*|X*|'') return 1 ;; esac
    return 0
  fi
  kill -0 "$1" 2>/dev/null
}
group_alive() { kill -0 "-$1" 2>/dev/null; }
nap() { sleep 0.1 2>/dev/null || sleep 1; }
""" + AS_ACCOUNT



def check_slug(slug: str) -> str:
    """A session slug as a file name: letters, digits and '-' (raises ValueError)."""
    if not isinstance(slug, str) or not _SLUG.fullmatch(slug):
        raise ValueError(f"unsafe session slug {slug!r}")
    return slug


def env_name_ok(name: str) -> bool:
    return isinstance(name, str) and bool(_ENV_NAME.fullmatch(name))


def ledger_entry_name(session_dir: str, slug: str) -> str:
    """A session's name in the ledger (its claim files' ``entry``): unique per host (the
    session directory is), readable. (Before the per-GPU ledger it named the session's file;
    ``ledger_entry`` in poll and stop scripts is such a file of a server started then.)"""
    digest = hashlib.sha256(session_dir.encode()).hexdigest()[:8]
    return f"{check_slug(slug)}.{digest}"


def ticks(seconds: float) -> int:
    """``seconds`` as a count of `SH_FUNCS`' ``nap`` (0.1 s), rounded up."""
    return max(0, math.ceil(seconds * 10))


def remove_session_func(session_dir: str, flush_wait: float = 0) -> str:
    """sh function ``remove_session``: unmount the data mounts of the session directory
    ``$S`` (= ``session_dir``) — after waiting up to ``flush_wait`` seconds for writes a
    mount has not uploaded yet, whose cache is kept if they still are not (``@@unsaved``
    lines, see `hostcmd.unmount_fragment`) — then ``rm -rf "$S"``, only when no mount point
    at all is left below it. Otherwise it keeps the directory, prints
    ``@@mounts-left <paths>`` and returns 1."""
    try:
        unmount = hostcmd.unmount_fragment(session_dir, flush_wait=flush_wait)
    except ValueError:
        # mount_fragment refuses such a path: no mount of ours can be there
        unmount = 'gs_mounts_left=""; gs_unsaved_dir=""; gs_keep_session=""\n'
    return (
        "remove_session() {\n"
        "{\n" + remove_cgroup_lines(session_dir) + unmount.rstrip("\n") + "\n} >/dev/null 2>&1\n"
        + hostcmd.UNSAVED_REPORT
        # whatever is still mounted below $S (ours, or one the user made): never rm -rf into it
        + 'gs_left=$(awk -v p="$S/" \'index($5, p) == 1 { print $5 }\' /proc/self/mountinfo 2>/dev/null | tr "\\n" " ")\n'
        'if [ -z "$gs_mounts_left" ] && [ -z "$gs_left" ] && [ -z "$gs_keep_session" ]; then rm -rf "$S"; return 0; fi\n'
        '[ -z "$gs_keep_session" ] || gs_left="$gs_left (and writes not uploaded in $C)"\n'
        'echo "@@mounts-left $gs_left"\n'
        'echo "still mounted, so $S was kept: $gs_left" >&2\n'
        "return 1\n"
        "}\n"
    )


# --------------------------------------------------------------------------- cleanup


def remove_tree_script(path: str) -> str:
    """Remove the directory ``path`` and what is in it (missing is fine) — like a session
    directory: data mounts below it are unmounted first and nothing is removed while a mount
    point is left (prints ``@@mounts-left``)."""
    return wrap(f"S={q(path)}\n{remove_session_func(path)}remove_session\n")


def sh_path(path: str) -> str:
    """A path for sh: "~/x" → "$HOME"/'x' (the host user's home), else quoted as is."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + q(path[2:])
    return q(path)


def export_lines(env: Mapping[str, str]) -> str:
    """``export NAME='value'`` lines; names must be valid sh identifiers (ValueError)."""
    out = []
    for name, value in env.items():
        if not env_name_ok(name):
            raise ValueError(f"not a valid environment variable name: {name!r}")
        out.append(f"export {name}={q(str(value))}\n")
    return "".join(out)


def unlink_data_lines(data_link: str | None, indent: str) -> str:
    """sh: remove the launch's data link when it still points into this session."""
    if not data_link:
        return ""
    k = q(data_link)
    return f'{indent}[ -L {k} ] && [ "$(readlink {k})" = "$S/data" ] && rm -f {k}\n'


def parse_marker(stdout: str, marker: str) -> str | None:
    """The value after the last ``@@<marker> `` line, or None."""
    found = None
    for line in stdout.splitlines():
        if line.startswith(f"@@{marker} "):
            found = line[len(marker) + 3 :].strip()
        elif line == f"@@{marker}":
            found = ""
    return found


# --------------------------------------------------------------------------- stop


def stop_script(
    session_dir: str,
    pid: int | None,
    *,
    ledger_dir: str | None = None,
    ledger_entry: str | None = None,
    interrupt_timeout: float = 10,
    term_timeout: float = 5,
    kill_timeout: float = 5,
    now: bool = False,
    data_link: str | None = None,
    ledger_claims: Sequence[str] = (),
    flush_wait: float = 0,
) -> str:
    """Stop the server's process group (INT → TERM → KILL, each followed by its wait; ``now``:
    KILL at once), then remove the session directory and the ledger entry. Signals only when
    the session directory still names ``pid`` as its server (a reused pid is never hit);
    ``pid=None`` (a launch cut short) stops whatever server the session directory names.
    Data mounts are unmounted before the directory goes, once their cached writes are
    uploaded (waiting up to ``flush_wait`` s; what is still not is kept: ``@@unsaved``), and
    ``@@mounts-left`` when one could not be unmounted: the directory is kept, the GPUs are
    released all the same.
    Prints ``@@stopped <signal that ended it or none>``, or ``@@survived`` when even KILL failed."""
    release = release_lines(ledger_dir, ledger_claims, ledger_entry, indent="  ")
    ladder = [("KILL", kill_timeout)] if now else [("INT", interrupt_timeout), ("TERM", term_timeout), ("KILL", kill_timeout)]
    steps = "".join(f"    [ -n \"$done\" ] || ladder {sig} {ticks(t)}\n" for sig, t in ladder)
    pid_line = f"p={int(pid)}" if pid else 'p=$(as_account cat "$S/pid" 2>/dev/null); case $p in *[!0-9]*) p="" ;; esac'
    body = f"""{SH_FUNCS}S={q(session_dir)}
{remove_session_func(session_dir, flush_wait)}{pid_line}
done=""
ladder() {{
  alive "$p" || {{ done=none; return; }}
  # as the session's account: a pid file it wrote never makes root signal another's process
  as_account kill -s "$1" -- "-$p" 2>/dev/null
  n=$2
  while alive "$p" && [ "$n" -gt 0 ]; do nap; n=$((n - 1)); done
  alive "$p" || done=$1
}}
cur=$(as_account cat "$S/pid" 2>/dev/null)
if [ "$cur" = "$p" ]; then
  if [ -n "$p" ]; then
{steps}    # what is left of the group (the server's children) goes with it
    group_alive "$p" && as_account kill -s KILL -- "-$p" 2>/dev/null
  else
    done=none
  fi
{unlink_data_lines(data_link, "  ")}  remove_session
{release}elif [ ! -e "$S" ]; then
  done=none
{unlink_data_lines(data_link, "  ")}{release}else
  done=none  # the session directory belongs to a newer server of this session: not ours
fi
if [ -n "$done" ]; then echo "@@stopped $done"; else echo "@@survived"; fi
"""
    return wrap(body)


def renew_script(session_dir: str, secrets: Mapping[int, S3Secret]) -> str:
    """Replace the credentials of a server's live S3 mounts (`hostcmd.renew_fragment`):
    prints ``@@renewed <index>`` / ``@@not-renewed <index>``. The files are written as the
    session directory's owner (`confine.AS_ACCOUNT`). CONTAINS SECRETS: never log it."""
    return wrap(f"S={q(session_dir)}\n" + AS_ACCOUNT + as_account_script(hostcmd.renew_fragment(session_dir, secrets)))


def uuids_of(gpus: Iterable[GPU]) -> tuple[str, ...]:
    return tuple(g.uuid for g in gpus)
