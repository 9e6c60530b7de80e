"""PURE: confining a server on a host to its user's Unix account and to its own cgroup.

Used by the launch, poll and stop scripts (`scripts`) when they run as root on the hub's
machine (``kind: local`` with ``run_as: "user"``):

- **Accounts.** The session root stays root's (0711: an account may reach its own session
  directory, never list the others); each session directory is made by root and handed to
  its user (0700), so the socket (0600), pid file, log, stops file and mount credentials in
  it are the user's alone. The server runs through ``setpriv`` (util-linux) with the user's
  uid, gid and supplementary groups, the user's ``HOME``, without ``--allow-root``.
- **Nothing root does for a server is steered by the user.** Every later step that reads or
  writes inside a session directory (pid file, log, stops file, credentials) or signals its
  processes runs as the directory's owner (``as_account``): a pid file naming another user's
  server, or a log that is a symlink to ``/etc/shadow``, gets the user nothing root could do.
  The owner is read from the directory itself (only root can change it), so scripts need no
  account name, and a script that runs as the account itself (the ssh kind) runs as is.
- **Limits.** With CPU / memory choices the server gets its own cgroup — v2
  (``cpu.max``, ``memory.max``, ``memory.swap.max=0``) or v1 (``memory.limit_in_bytes`` +
  ``memory.memsw.limit_in_bytes``, ``cpu.cfs_quota_us``, ``cpuacct`` for accounting) —
  named after the session directory (`cgroup_name`), so every clean-up finds it: the
  server's processes are put in it before they become the server; a start that cannot
  apply a limit fails with the reason (``@@limits-failed``) rather than run unlimited.
  Removing a session kills what is left in its cgroup and removes the cgroup
  (`remove_cgroup_lines`).
"""

from __future__ import annotations

import hashlib
import math
import shlex
from dataclasses import dataclass

q = shlex.quote

#: the launch could not apply the CPU / memory limits (``@@limits-failed <reason>``)
EXIT_LIMITS = 17
#: where cgroups live, and the parent of gridspawner's in each hierarchy
CGROUP_BASE = "/sys/fs/cgroup"
CGROUP_PARENT = "gridspawner"
#: the CFS period (µs) a CPU quota is a multiple of
CPU_PERIOD = 100_000


@dataclass(frozen=True)
class Account:
    """The Unix account a server runs as (resolved on the host when the server starts)."""

    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class Limits:
    """What a server may use: ``cpu`` (CPUs, 0 = no limit) and ``memory`` (bytes, 0 = none)."""

    cpu: float = 0.0
    memory: int = 0

    def __bool__(self) -> bool:
        return bool(self.cpu or self.memory)


def limits_of(cpu: float | None, memory_gb: float | None) -> Limits:
    """A request's ``cpu`` (CPUs) and ``memory`` (GB, 10^9 bytes) as `Limits`."""
    return Limits(float(cpu or 0), int((memory_gb or 0) * 1_000_000_000))


def cgroup_name(session_dir: str) -> str:
    """The cgroup of the server of ``session_dir`` (unique per host, as the directory is)."""
    return "gs-" + hashlib.sha256(session_dir.encode()).hexdigest()[:20]


#: sh function ``as_account CMD…``: CMD as the owner of ``$S`` when we are root and ``$S``
#: belongs to another account (supplementary groups cleared: these steps need none), else as
#: is. ``stat`` does not follow a symlink, and only root may change a directory's owner.
AS_ACCOUNT = r"""as_account() {
  gs_ou=$(stat -c %u "$S" 2>/dev/null)
  if [ -n "$gs_ou" ] && [ "$gs_ou" != 0 ] && [ "$(id -u)" = 0 ] && [ ! -L "$S" ]; then
    setpriv --reuid="$gs_ou" --regid="$(stat -c %g "$S")" --clear-groups -- "$@"
  else
    "$@"
  fi
}
"""


def as_account_script(body: str) -> str:
    """sh that runs ``body`` (a script) with ``/bin/sh -s`` through ``as_account``, on its stdin
    (a here-document: a secret in ``body`` never reaches an argv)."""
    tag = "GS_AS_ACCOUNT_" + hashlib.sha256(body.encode()).hexdigest()[:16]
    if f"\n{tag}\n" in f"\n{body}\n":
        raise ValueError("here-document tag found in the script")
    return f"as_account /bin/sh -s <<'{tag}'\n{body.rstrip(chr(10))}\n{tag}\n"


def hand_over_lines(account: Account) -> str:
    """sh (root, after ``mkdir -m 700 "$S"``): give the session directory to ``account``."""
    return f'chown {int(account.uid)}:{int(account.gid)} "$S" || {{ echo "cannot hand $S to {account.name}" >&2; exit 10; }}\n'


def account_env(account: Account) -> dict[str, str]:
    """The login variables of ``account`` for its server's environment."""
    return {"HOME": account.home, "USER": account.name, "LOGNAME": account.name}


def become_words(account: Account) -> tuple[str, ...]:
    """The words that run the rest of a command line as ``account`` (with its groups)."""
    return ("setpriv", f"--reuid={int(account.uid)}", f"--regid={int(account.gid)}", "--init-groups", "--")


def cgroup_setup_lines(session_dir: str, limits: Limits) -> str:
    """sh (root, in the launch script, ``remove_session`` defined): make the server's cgroup
    with ``limits`` and set ``gs_cgroups`` to the directories its processes must join. On
    any failure: ``@@limits-failed <reason>``, remove the session, exit `EXIT_LIMITS`."""
    name = cgroup_name(session_dir)
    quota = int(math.ceil(limits.cpu * CPU_PERIOD)) if limits.cpu else 0
    mem = int(limits.memory)
    v2 = f"{CGROUP_BASE}/{CGROUP_PARENT}/{name}"
    return f"""gs_limits_fail() {{
  echo "@@limits-failed $*"
  echo "cannot apply the CPU / memory limits: $*" >&2
  remove_session
  exit {EXIT_LIMITS}
}}
gs_put() {{ [ -f "$2" ] && [ ! -L "$2" ] && echo "$1" >"$2" 2>/dev/null || gs_limits_fail "cannot write $1 to $2"; }}
gs_cgroups=""
[ "$(id -u)" = 0 ] || gs_limits_fail "cgroups need the launch to run as root (it runs as $(id -un))"
if [ -f {CGROUP_BASE}/cgroup.controllers ] && grep -qw memory {CGROUP_BASE}/cgroup.controllers && grep -qw cpu {CGROUP_BASE}/cgroup.controllers; then
  grep -qw memory {CGROUP_BASE}/cgroup.subtree_control 2>/dev/null && grep -qw cpu {CGROUP_BASE}/cgroup.subtree_control 2>/dev/null \\
    || echo "+cpu +memory" >{CGROUP_BASE}/cgroup.subtree_control 2>/dev/null
  mkdir -p {q(v2)} 2>/dev/null || gs_limits_fail "cannot create {v2}"
  grep -qw memory {CGROUP_BASE}/{CGROUP_PARENT}/cgroup.subtree_control 2>/dev/null \\
    || echo "+cpu +memory" >{CGROUP_BASE}/{CGROUP_PARENT}/cgroup.subtree_control 2>/dev/null \\
    || gs_limits_fail "cannot enable the cpu and memory controllers in {CGROUP_BASE}/{CGROUP_PARENT}"
  {f'gs_put "{quota} {CPU_PERIOD}" {q(v2)}/cpu.max' if quota else ':'}
  {f'gs_put {mem} {q(v2)}/memory.max' if mem else ':'}
  {f'[ ! -f {q(v2)}/memory.swap.max ] || gs_put 0 {q(v2)}/memory.swap.max' if mem else ':'}
  gs_cgroups={q(v2)}
elif [ -d {CGROUP_BASE}/memory ] && [ -d {CGROUP_BASE}/cpu ]; then
  for gs_c in memory cpu cpuacct; do
    [ -d "{CGROUP_BASE}/$gs_c" ] || continue
    gs_d="{CGROUP_BASE}/$gs_c/{CGROUP_PARENT}/{name}"
    case " $gs_cgroups " in *" $(readlink -f "{CGROUP_BASE}/$gs_c")/{CGROUP_PARENT}/{name} "*) continue ;; esac
    mkdir -p "$gs_d" 2>/dev/null || gs_limits_fail "cannot create $gs_d"
    gs_cgroups="$gs_cgroups $(readlink -f "{CGROUP_BASE}/$gs_c")/{CGROUP_PARENT}/{name}"
  done
  {f'gs_put {mem} {CGROUP_BASE}/memory/{CGROUP_PARENT}/{name}/memory.limit_in_bytes' if mem else ':'}
  {f'[ ! -f {CGROUP_BASE}/memory/{CGROUP_PARENT}/{name}/memory.memsw.limit_in_bytes ] || gs_put {mem} {CGROUP_BASE}/memory/{CGROUP_PARENT}/{name}/memory.memsw.limit_in_bytes' if mem else ':'}
  {f'gs_put {CPU_PERIOD} {CGROUP_BASE}/cpu/{CGROUP_PARENT}/{name}/cpu.cfs_period_us' if quota else ':'}
  {f'gs_put {quota} {CGROUP_BASE}/cpu/{CGROUP_PARENT}/{name}/cpu.cfs_quota_us' if quota else ':'}
else
  gs_limits_fail "this host has neither cgroup v2 with the cpu and memory controllers nor cgroup v1 memory and cpu hierarchies under {CGROUP_BASE}"
fi
"""


def remove_cgroup_lines(session_dir: str) -> str:
    """sh (any account; only root finds something to do): kill every process left in the
    server's cgroup(s) and remove them. Harmless when there are none."""
    name = cgroup_name(session_dir)
    return f"""for gs_d in {CGROUP_BASE}/{CGROUP_PARENT}/{name} {CGROUP_BASE}/*/{CGROUP_PARENT}/{name}; do
  [ -d "$gs_d" ] && [ ! -L "$gs_d" ] || continue
  gs_n=50
  # (cgroup files have no size: read them)
  while [ -n "$(cat "$gs_d/cgroup.procs" 2>/dev/null)" ] && [ "$gs_n" -gt 0 ]; do
    if [ -f "$gs_d/cgroup.kill" ]; then echo 1 >"$gs_d/cgroup.kill" 2>/dev/null
    else for gs_p in $(cat "$gs_d/cgroup.procs" 2>/dev/null); do kill -s KILL "$gs_p" 2>/dev/null; done; fi
    sleep 0.1 2>/dev/null || sleep 1
    gs_n=$((gs_n - 1))
  done
  rmdir "$gs_d" 2>/dev/null
done
"""


#: the server's first process, as root: join the cgroups named in its first argument (a
#: space-separated list, maybe empty), then run the rest of its argv
JOIN_CGROUPS = 'for gs_d in $1; do echo $$ >"$gs_d/cgroup.procs" || exit 125; done; shift; exec "$@"'
