"""Pure builders of the sh scripts the host backend runs, and parsers of what they print.

Every script is sent on stdin of ``/bin/sh -s`` (locally or over SSH), so a secret in it
(the API token in the launch script) never appears in an argv, a file or a log: **never log a
script**. Every value is ``shlex.quote``d; the only unquoted text is the admin's image
``prefix`` (trusted shell, like a Dockerfile). Scripts are POSIX sh (dash, busybox ash,
bash): ``flock``, ``setsid`` and a fractional ``sleep`` are the only non-POSIX tools used.

Each body is wrapped in ``{ … } </dev/null``: the shell parses the whole script before
running any of it, and no command can read the rest of the script from stdin.

Data mounts: the launch script runs `hostcmd.mount_fragment` right after it made the 0700
session directory (FUSE mounts / copies into ``$S/data/<target>``, credentials in 0600 files
in ``$S/.mounts``). Every script that removes a session directory does it through
``remove_session``: unmount first (`hostcmd.unmount_fragment`), and ``rm -rf`` only when no
mount point is left anywhere below it — a ``rm -rf`` that walks into a live FUSE mount would
delete the bucket's or the storage server's files.

Ledger: claim files per GPU in ``ledger_dir``, made and judged by the sh code of `ledger`
(see there for who may change what); the launch script takes its claims over at once and hands
them to the server's process, poll and stop scripts remove them.
"""

from __future__ import annotations

import hashlib
import math
import re
import shlex
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from ...gpu import NVIDIA_SMI_ARGS, GPU
from ...mounts import hostcmd
from ...mounts.hostcmd import EXIT_MOUNT
from ...mounts.resolved import ResolvedMount, S3Secret
from ...vocabulary import NAME as _SLUG_NAME
from . import ledger
from .confine import AS_ACCOUNT, EXIT_LIMITS, JOIN_CGROUPS, Account, Limits, as_account_script, become_words, cgroup_setup_lines, hand_over_lines, remove_cgroup_lines
from .ledger import EXIT_CLAIM_LOST, EXIT_CONFLICT, EXIT_LEDGER
from .session_marks import owner_lines, sessions_lines

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
__all__ = ["EXIT_CLAIM_LOST", "EXIT_CONFLICT", "EXIT_LEDGER", "EXIT_LIMITS"]  # re-exported for the backend

#: the server's first process once it runs as its account (after `confine.JOIN_CGROUPS`):
#: opens its log, records its pid (the new session's id) in "$S/pid", then becomes the
#: server — as the account, so a symlink planted in its directory gets it nothing. Started by
#: ``setsid -f``, not by ``&``: sh makes a background job ignore SIGINT for good, and the
#: stop ladder begins with SIGINT.
_EXEC_RECORDING_PID = ('exec >"$1/server.log" 2>&1 </dev/null; '
                       'echo $$ >"$1/pid.new" && mv -f "$1/pid.new" "$1/pid" || exit 126; shift; exec "$@"')

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


def _wrap(body: str) -> str:
    return "{\n" + body.rstrip("\n") + "\n} </dev/null\n"


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


def _ticks(seconds: float) -> int:
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


# --------------------------------------------------------------------------- probe


def probe_script(nvidia_smi: Sequence[str], ledger_dir: str, *, shared: bool = False, grace: float = 120,
                 session_root: str | None = None) -> str:
    """Print the GPU inventory and the ledger's claims on those GPUs (`inventory.parse_probe`
    reads it): ``@@gpus missing`` (no nvidia-smi: no GPUs) or ``@@gpus <status>`` +
    nvidia-smi's output, then (with ``session_root``) what `sessions_lines` prints, then what
    `ledger.probe_lines` prints. ``shared``: several accounts use the ledger (it must be root's)."""
    cmd = " ".join(q(a) for a in (*nvidia_smi, *NVIDIA_SMI_ARGS))
    body = f"""gs_uuids=""
if command -v {q(nvidia_smi[0])} >/dev/null 2>&1; then
  out=$({cmd} 2>&1); rc=$?
  echo "@@gpus $rc"
  printf '%s\\n' "$out"
  [ "$rc" = 0 ] && gs_uuids=$(printf '%s\\n' "$out" | cut -d, -f2 | sed 's/^ *//;s/ *$//')
else
  echo "@@gpus missing"
fi
"""
    sessions = sessions_lines(session_root) if session_root else ""
    return _wrap(body + sessions + ledger.probe_lines(ledger_dir, shared=shared, grace=grace))


# --------------------------------------------------------------------------- cleanup


def remove_tree_script(path: str) -> str:
    """Remove the directory ``path`` and what is in it (missing is fine) — like a session
    directory: data mounts below it are unmounted first and nothing is removed while a mount
    point is left (prints ``@@mounts-left``)."""
    return _wrap(f"S={q(path)}\n{remove_session_func(path)}remove_session\n")


# --------------------------------------------------------------------------- launch


@dataclass(frozen=True)
class LaunchSpec:
    """Everything the launch script needs, already resolved (pure data)."""

    session_root: str
    slug: str
    notebook_dir: str  # absolute, or starting with "~/" (the host user's home)
    env: Mapping[str, str] = field(repr=False)  # holds the API token: never in a repr
    cmd: tuple[str, ...]
    prefix: str = ""
    ledger_dir: str | None = None  # with ledger_claims: the claim files (of session ledger_entry)
    ledger_entry: str | None = None  # this launch takes over and hands to its server
    ledger_claims: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = field(default=())
    #: data mounts (`ResolvedMount`, with their SECRETS) made into ``$S/data/<target>``
    #: before the server starts; ``mount_tool``: the FUSE tool (`hostcmd.mount_fragment`)
    mounts: tuple[ResolvedMount, ...] = field(default=(), repr=False)
    mount_tool: str = "rclone"
    #: seconds a FUSE mount may take to appear
    mount_wait: float = 30
    #: with mounts: the name of a symlink in the notebook directory to ``$S/data`` (so the
    #: user finds the data next to the notebooks); None: no link
    data_link: str | None = None
    #: seconds a clean-up of a dead server's directory waits for its mounts' uploads
    flush_wait: float = 0
    #: whose session this is, written into ``$S/owner`` (with the host's name): the hub's id
    #: and the backend's name (what a hub reclaims after a crash: `gridspawner.reconcile`)
    hub: str = ""
    backend: str = ""
    #: the account the server runs as (the launch runs as root: `confine`); None: as the
    #: account running the script
    account: Account | None = None
    #: CPU / memory limits enforced with a cgroup (`confine.cgroup_setup_lines`); empty: none
    limits: Limits = Limits()

    @property
    def session_dir(self) -> str:
        return self.session_root.rstrip("/") + "/" + check_slug(self.slug)

    @property
    def socket_path(self) -> str:
        return self.session_dir + "/" + SOCKET_NAME


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


def session_setup_lines(spec: LaunchSpec, *, mark: str = "") -> str:
    """The start of a launch (a server's or a batch job's): the sh functions, ``R`` / ``S``,
    the session root checked (0711 with an account, else 0700), a live session refused
    (``@@busy``), a fresh 0700 session directory with the owner marks (+ ``mark``, a line
    such as ``kind=run``) handed to ``spec.account``, its cgroup (``gs_cgroups``) and data
    mounts (made as the account). Ends in the session directory's parent's working directory."""
    take_over = ""
    if spec.ledger_dir and spec.ledger_entry and spec.ledger_claims:
        take_over = ledger.take_over_lines(spec.ledger_dir, spec.ledger_entry, spec.ledger_claims)
    limits = cgroup_setup_lines(spec.session_dir, spec.limits) if spec.limits else 'gs_cgroups=""\n'
    marks = owner_lines(spec.hub, spec.backend) if spec.hub else ""
    if mark:
        marks += f'echo {q(mark)} >>"$S/owner"\n'
    mount = ""
    if spec.mounts:
        # in a subshell: its `exit` on a failure ends the mount step only, and the script
        # removes the session directory (unmounting first) before it exits
        fragment = hostcmd.mount_fragment(spec.session_dir, spec.mounts, tool=spec.mount_tool, wait=spec.mount_wait)
        data = hostcmd.data_dir_of(spec.session_dir)
        # a FUSE mount comes up even when its credentials are refused (rclone asks S3 only on
        # the first listing): list each mount once, so a bad one fails the launch, named
        checks = "".join(f" && mount_check {int(m.index)} {q(data + '/' + m.target)}" for m in spec.mounts if m.mode == "mount")
        on_failure = f"{checks} || {{ remove_session; exit {EXIT_MOUNT}; }}"
        if spec.account:  # as the user (a here-document: what follows goes on its first line)
            first, _, rest = as_account_script(fragment).partition("\n")
            mount = f"{first}{on_failure}\n{rest}"
        else:
            mount = f"(\n{fragment.rstrip()}\n){on_failure}\n"
    return f"""{SH_FUNCS}umask 077
R={q(spec.session_root)}
S={q(spec.session_dir)}
{remove_session_func(spec.session_dir, spec.flush_wait)}{_MOUNT_CHECK if spec.mounts else ""}mkdir -p "$R" 2>/dev/null
if [ -L "$R" ] || [ ! -d "$R" ] || [ ! -O "$R" ]; then
  echo "session root $R is not a directory owned by $(id -un)" >&2
  exit {EXIT_ROOT}
fi
chmod {"711" if spec.account else "700"} "$R" || exit {EXIT_ROOT}
{take_over}if [ -d "$S" ]; then
  old=$(as_account cat "$S/pid" 2>/dev/null)
  if alive "$old"; then
    echo "@@busy $old"
    exit {EXIT_BUSY}
  fi
  remove_session || exit {EXIT_MOUNTS_LEFT}
fi
mkdir -m 700 "$S" || exit {EXIT_ROOT}
{marks}{hand_over_lines(spec.account) if spec.account else ""}{limits}{mount}"""


def start_lines(spec: LaunchSpec, wrapper: str, argv: str, log: str, what: str, on_fail: str = "") -> str:
    """sh: start ``wrapper`` (an sh ``-c`` text that gets ``"$S"`` and then ``argv``, already
    quoted words) in a session of its own, in the cgroups ``gs_cgroups``, as
    ``spec.account`` (when set); wait for its pid file ``$S/pid``; print ``@@pid <pid>``,
    or the ``log``'s last lines, run ``on_fail`` (sh lines), remove the session and exit
    `EXIT_NO_START`."""
    become = "".join(q(w) + " " for w in become_words(spec.account)) if spec.account else ""
    record_pid = ledger.hold_lines(spec.ledger_dir, spec.ledger_claims) if (
        spec.ledger_dir and spec.ledger_entry and spec.ledger_claims) else ""
    return f"""setsid -f /bin/sh -c {q(JOIN_CGROUPS)} sh "$gs_cgroups" {become}/bin/sh -c {q(wrapper)} sh "$S" {argv} >/dev/null 2>&1 </dev/null
n=100
while [ ! -s "$S/pid" ] && [ "$n" -gt 0 ]; do nap; n=$((n - 1)); done
pid=$(as_account cat "$S/pid" 2>/dev/null)
case $pid in *[!0-9]*) pid="" ;; esac
if [ -z "$pid" ]; then
  echo "the {what} did not start:" >&2
  as_account tail -n 20 "$S/{log}" >&2 2>/dev/null
{on_fail}  remove_session
  exit {EXIT_NO_START}
fi
{record_pid}echo "@@pid $pid"
"""


def launch_script(spec: LaunchSpec) -> str:
    """Start the server in its own session (pid = session id = process group id), listening on a unix socket in a fresh 0700
    session directory; print ``@@pid <pid>``. Exits `EXIT_BUSY` (printing ``@@busy <pid>``)
    when a server of this session still runs. CONTAINS SECRETS: never log it."""
    server = " ".join(q(a) for a in (*spec.cmd, *spec.extra_args))
    prefix = f"{{\n{spec.prefix.rstrip()}\n}} >&2\n" if spec.prefix.strip() else ""
    # as its own account the server needs no --allow-root (and must not get it)
    allow_root = "set --" if spec.account else 'if [ "$(id -u)" = 0 ]; then set -- --allow-root; else set --; fi'
    link = unlink = ""
    if spec.mounts and spec.data_link:
        link = data_link_lines(spec.data_link)
        unlink = '  [ "$(readlink "$G" 2>/dev/null)" = "$S/data" ] && rm -f "$G"\n'
    body = f"""{session_setup_lines(spec)}{export_lines(spec.env)}N={sh_path(spec.notebook_dir)}
as_account mkdir -p "$N" && cd "$N" || {{ echo "cannot use notebook directory $N" >&2; remove_session; exit {EXIT_NOTEBOOK_DIR}; }}
{link}{prefix}{allow_root}
{start_lines(spec, _EXEC_RECORDING_PID, server + ' "$@" --ServerApp.sock="$S/' + SOCKET_NAME + '" --ServerApp.sock_mode=0600',
             "server.log", "server process", unlink)}"""
    return _wrap(body)


#: sh function ``mount_check INDEX DIR``: DIR (a fresh mount) can be listed, within a minute
#: where ``timeout`` exists; else print ``@@mount-failed INDEX`` and the tool's log on stderr
_MOUNT_CHECK = r"""mount_check() {
  if command -v timeout >/dev/null 2>&1; then
    gs_err=$(as_account timeout 60 ls -A "$2" 2>&1 >/dev/null) && return 0
  else
    gs_err=$(as_account ls -A "$2" 2>&1 >/dev/null) && return 0
  fi
  echo "@@mount-failed $1"
  [ -f "$S/.mounts/$1.log" ] && as_account tail -n 20 "$S/.mounts/$1.log" >&2
  printf '%s\n' "$gs_err" >&2
  return 1
}
"""


def data_link_lines(name: str) -> str:
    """sh lines run in the notebook directory: make ``./<name>`` a symlink to ``$S/data``
    (replacing an old link; a real file or directory of that name is left alone). Prints
    ``@@data-link <absolute link path>``, or ``@@data-dir <$S/data>`` when it made none."""
    if not isinstance(name, str) or not _SLUG_NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"unsafe data directory name {name!r}")
    return (
        f"G={q(name)}\n"
        'if [ -L "$G" ] || [ ! -e "$G" ]; then\n'
        '  rm -f "$G" && ln -s "$S/data" "$G" && echo "@@data-link $PWD/$G"\n'
        "fi\n"
        '[ "$(readlink "$G" 2>/dev/null)" = "$S/data" ] || echo "@@data-dir $S/data"\n'
    )


def _unlink_data(data_link: str | None, indent: str) -> str:
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


# --------------------------------------------------------------------------- wait / poll / stop


def wait_script(session_dir: str, pid: int, timeout: float, log_lines: int = 30) -> str:
    """Wait up to ``timeout`` s for the server's socket. Prints ``@@ready``, ``@@waiting``
    (still starting) or ``@@dead`` followed by the last ``log_lines`` lines of server.log."""
    body = f"""{SH_FUNCS}S={q(session_dir)}
p={int(pid)}
n={_ticks(timeout)}
while :; do
  if [ -S "$S/{SOCKET_NAME}" ]; then echo "@@ready"; exit 0; fi
  if ! alive "$p"; then
    echo "@@dead"
    as_account tail -n {int(log_lines)} "$S/server.log" 2>/dev/null
    exit 0
  fi
  [ "$n" -gt 0 ] || break
  nap
  n=$((n - 1))
done
echo "@@waiting"
"""
    return _wrap(body)


def poll_script(
    session_dir: str, pid: int, *, ledger_dir: str | None = None, ledger_entry: str | None = None,
    data_link: str | None = None, ledger_claims: Sequence[str] = (), flush_wait: float = 0,
) -> str:
    """Print ``@@running`` when ``pid`` is alive and still this session's server, else clean
    up (the hub calls no stop() for a server its poll found gone: unmount its data — after
    waiting up to ``flush_wait`` s for their uploads —, remove the session directory, the
    data link and the ledger entry) and print ``@@gone``."""
    release = ledger.release_lines(ledger_dir, ledger_claims, ledger_entry, indent="    ")
    body = f"""{SH_FUNCS}S={q(session_dir)}
{remove_session_func(session_dir, flush_wait)}p={int(pid)}
cur=$(as_account cat "$S/pid" 2>/dev/null)
if [ "$cur" = "$p" ] && alive "$p"; then
  echo "@@running"
else
  if [ "$cur" = "$p" ] || [ ! -e "$S" ]; then
{_unlink_data(data_link, "    ")}    remove_session
{release}  fi
  echo "@@gone"
fi
"""
    return _wrap(body)


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
    release = ledger.release_lines(ledger_dir, ledger_claims, ledger_entry, indent="  ")
    ladder = [("KILL", kill_timeout)] if now else [("INT", interrupt_timeout), ("TERM", term_timeout), ("KILL", kill_timeout)]
    steps = "".join(f"    [ -n \"$done\" ] || ladder {sig} {_ticks(t)}\n" for sig, t in ladder)
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
{_unlink_data(data_link, "  ")}  remove_session
{release}elif [ ! -e "$S" ]; then
  done=none
{_unlink_data(data_link, "  ")}{release}else
  done=none  # the session directory belongs to a newer server of this session: not ours
fi
if [ -n "$done" ]; then echo "@@stopped $done"; else echo "@@survived"; fi
"""
    return _wrap(body)


def renew_script(session_dir: str, secrets: Mapping[int, S3Secret]) -> str:
    """Replace the credentials of a server's live S3 mounts (`hostcmd.renew_fragment`):
    prints ``@@renewed <index>`` / ``@@not-renewed <index>``. The files are written as the
    session directory's owner (`confine.AS_ACCOUNT`). CONTAINS SECRETS: never log it."""
    return _wrap(f"S={q(session_dir)}\n" + AS_ACCOUNT + as_account_script(hostcmd.renew_fragment(session_dir, secrets)))


def uuids_of(gpus: Iterable[GPU]) -> tuple[str, ...]:
    return tuple(g.uuid for g in gpus)
