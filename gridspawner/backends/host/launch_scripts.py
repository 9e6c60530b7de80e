"""The launch script of a server (pure): the session set-up a batch job shares
(`session_setup_lines`, `start_lines`), the data mounts and their check, the data link in
the notebook directory. `scripts` has the shared pieces and the rules every script follows.
The launch script CONTAINS SECRETS (the API token, mount credentials): never log it."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Mapping

from ...mounts import hostcmd
from ...mounts.hostcmd import EXIT_MOUNT
from ...mounts.resolved import ResolvedMount
from ...vocabulary import NAME as _SLUG_NAME
from .confine import JOIN_CGROUPS, Account, Limits, as_account_script, become_words, cgroup_setup_lines, hand_over_lines
from .ledger_hold import hold_lines, take_over_lines
from .scripts import (
    EXIT_BUSY,
    EXIT_MOUNTS_LEFT,
    EXIT_NO_START,
    EXIT_NOTEBOOK_DIR,
    EXIT_ROOT,
    SH_FUNCS,
    SOCKET_NAME,
    check_slug,
    export_lines,
    remove_session_func,
    sh_path,
    wrap,
)
from .session_marks import owner_lines

q = shlex.quote

#: the server's first process once it runs as its account (after `confine.JOIN_CGROUPS`):
#: opens its log, records its pid (the new session's id) in "$S/pid", then becomes the
#: server — as the account, so a symlink planted in its directory gets it nothing. Started by
#: ``setsid -f``, not by ``&``: sh makes a background job ignore SIGINT for good, and the
#: stop ladder begins with SIGINT.
EXEC_RECORDING_PID = ('exec >"$1/server.log" 2>&1 </dev/null; '
                       'echo $$ >"$1/pid.new" && mv -f "$1/pid.new" "$1/pid" || exit 126; shift; exec "$@"')

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



def session_setup_lines(spec: LaunchSpec, *, mark: str = "") -> str:
    """The start of a launch (a server's or a batch job's): the sh functions, ``R`` / ``S``,
    the session root checked (0711 with an account, else 0700), a live session refused
    (``@@busy``), a fresh 0700 session directory with the owner marks (+ ``mark``, a line
    such as ``kind=run``) handed to ``spec.account``, its cgroup (``gs_cgroups``) and data
    mounts (made as the account). Ends in the session directory's parent's working directory."""
    take_over = ""
    if spec.ledger_dir and spec.ledger_entry and spec.ledger_claims:
        take_over = take_over_lines(spec.ledger_dir, spec.ledger_entry, spec.ledger_claims)
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
{remove_session_func(spec.session_dir, spec.flush_wait)}{MOUNT_CHECK if spec.mounts else ""}mkdir -p "$R" 2>/dev/null
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
    record_pid = hold_lines(spec.ledger_dir, spec.ledger_claims) if (
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
{start_lines(spec, EXEC_RECORDING_PID, server + ' "$@" --ServerApp.sock="$S/' + SOCKET_NAME + '" --ServerApp.sock_mode=0600',
             "server.log", "server process", unlink)}"""
    return wrap(body)


#: sh function ``mount_check INDEX DIR``: DIR (a fresh mount) can be listed, within a minute
#: where ``timeout`` exists; else print ``@@mount-failed INDEX`` and the tool's log on stderr
MOUNT_CHECK = r"""mount_check() {
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
