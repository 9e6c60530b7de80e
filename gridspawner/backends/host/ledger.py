"""The on-host GPU ledger: its rules, the sh code that checks the directory and judges a claim
file (shared by every ledger script), and the probe's listing of the claims. The rooms beside
it: `ledger_claim` (making claims), `ledger_hold` (a claim's life after it is made: taken over
by the launch, held by the server, released, freed when dead) and `ledger_problems` (what an
unsafe ledger means to an admin).

The ledger is a directory on each host (``ledger_dir``) that says which GPU belongs to which
server. It must hold when several hubs and several accounts use the host, and when any
account on the host is hostile. The rules:

**Who may change the directory.** Accepted only if no other account can replace or empty
it: the directory and each of its parents are owned by root or by the account itself, and
writable by others only with the sticky bit. When one backend uses several accounts on a host
(``username: "{username}"``, or a ``probe_username`` of its own) the ledger is *shared* and
must be owned by root — made by the admin (``install -d -o root -g root -m 1777 DIR``, or a
group and 1770 to let only that group's accounts claim). A *private* ledger (one account) may
be the account's own directory, and is made 0700 by the first claim. An unsafe directory is
never used: probes report it, claims refuse it, and the hub's message gives the admin the
exact command that fixes it (`problem_message`).

**Claims are files, one per GPU, made exclusively.** ``<key>@<slot>`` (``key`` = the GPU's
UUID with anything but letters, digits and '-' as '_'; ``slot`` 1-64), created with ``set -C``
(O_EXCL) by the claiming account, mode 0644, holding ``key=value`` lines: ``uuid``,
``entry`` (the session), ``session`` (its directory), ``user``, ``owner`` (which hub, for
people), ``hub`` and ``backend`` (the hub's stable id and the backend's name: what a hub
reclaims after a crash, see `gridspawner.reconcile`), ``created`` and ``hold=<pid> <start>``
lines (the last one counts). There is no lock anyone
could hold: a claim scans the GPU's files, creates the first free slot, then scans again and
backs off (removing its own file) if another valid claim is there — of two overlapping claims
at least one sees the other. In the sticky directory only a file's owner may delete or
rename it, and only the owner may write it.

**What a claim file is worth** (`claim_state`, decided on the host, where /proc is):

- ``held``: its last ``hold`` process runs with the file's owner as its real user, and
  started when the line says (a reused pid is not the holder);
- ``hidden``: that process exists but cannot be seen (``/proc`` mounted with ``hidepid``) —
  counted as held, never handed out;
- ``pending``: the holder is gone, and the file changed less than ``ledger_grace`` seconds
  ago (its ctime, which no account can set): a claim between the claim script and the
  launch script, or a server that has just died;
- ``stale``: older than that with no holder — ignored; its owner's next claim removes it;
- ``forged``: its holder runs as another account, or its ``uuid`` is not the GPU its name
  says — ignored at once.

Only the owner of a file counts as who holds a claim, never what the file says. Files of the
earlier one-file-per-server ledger (``uuid=`` and ``pid=`` lines, no ``@`` in the name) are
still read, with the same rules, so servers started before an upgrade keep their GPUs.
More files than a real host needs (``MAX_SLOTS`` for one GPU, ``MAX_LEGACY`` old-style) make
the GPUs concerned count as taken (never handed out twice) and are reported.
"""

from __future__ import annotations

import re
import shlex

q = shlex.quote

#: exit statuses of the claim script
EXIT_CONFLICT = 3  # a requested GPU holds a valid claim of another session (``@@conflict <uuid>``)
EXIT_LEDGER = 4  # the ledger directory is unsafe or cannot be made (``@@ledger-unsafe …``)
#: the launch script: a claim file of this launch is gone or not ours any more
EXIT_CLAIM_LOST = 16

MAX_SLOTS = 64
MAX_LEGACY = 256
#: states in which a claim keeps its GPU from being handed out
BLOCKING = frozenset({"held", "hidden", "pending"})

_KEY_BYTE = re.compile(rb"[^A-Za-z0-9-]")


def gpu_key(uuid: str) -> str:
    """The file-name form of a GPU UUID (``MIG-GPU-…/1/0`` → ``MIG-GPU-…_1_0``); the sh
    side computes the same with ``tr -c 'A-Za-z0-9-' '_'``, byte for byte."""
    return _KEY_BYTE.sub(b"_", uuid.encode()).decode("ascii")


def label(value: str) -> str:
    """A ledger value on one line."""
    return re.sub(r"[\x00-\x1f\x7f]", "?", value)[:200]


# --------------------------------------------------------------------------- sh functions

#: ``gs_unsafe KIND PATH`` records why the ledger cannot be trusted (``$gs_problem``);
#: ``gs_check_ledger`` returns 0 (usable), 1 (unsafe) or 2 (missing) for ``$L``; needs
#: ``$gs_me`` (our uid) and ``$gs_shared`` (1: several accounts, so root must own it)
CHECK_FUNCS = r"""gs_unsafe() {
  gs_problem="$1 $2 $(stat -c %U "$2" 2>/dev/null || echo '?') $(id -un 2>/dev/null || echo '?')"
  return 1
}
gs_loose() { [ $((0$1 & 022)) -ne 0 ] && [ $((0$1 & 01000)) -eq 0 ]; }
gs_check_ledger() {
  gs_problem=""
  d=$L
  while [ "$d" != / ]; do
    d=${d%/*}
    [ -n "$d" ] || d=/
    if [ -L "$d" ]; then
      o=$(stat -c %u "$d" 2>/dev/null)
      [ "$o" = 0 ] || [ "$o" = "$gs_me" ] || { gs_unsafe parent-owner "$d"; return 1; }
      set -- $(stat -L -c '%u %a' "$d" 2>/dev/null)
    else
      set -- $(stat -c '%u %a' "$d" 2>/dev/null)
    fi
    [ -n "$1" ] || continue
    [ "$1" = 0 ] || [ "$1" = "$gs_me" ] || { gs_unsafe parent-owner "$d"; return 1; }
    gs_loose "$2" && { gs_unsafe parent-mode "$d"; return 1; }
  done
  [ -L "$L" ] && { gs_unsafe symlink "$L"; return 1; }
  [ -e "$L" ] || return 2
  [ -d "$L" ] || { gs_unsafe notdir "$L"; return 1; }
  set -- $(stat -c '%u %a' "$L" 2>/dev/null)
  if [ "$1" != 0 ] && { [ "$1" != "$gs_me" ] || [ "$gs_shared" = 1 ]; }; then gs_unsafe owner "$L"; return 1; fi
  gs_loose "$2" && { gs_unsafe mode "$L"; return 1; }
  return 0
}
"""

#: ``gs_key UUID``; ``gs_start PID`` (its start time in clock ticks since boot, from /proc);
#: ``gs_holder UID PID START`` → live | dead | foreign | hidden; ``gs_state FILE KEY`` →
#: ``<state> <pid or -> <age>`` (KEY empty: an old-style file); needs ``$gs_now``, ``$gs_grace``
STATE_FUNCS = r"""gs_key() { printf '%s' "$1" | tr -c 'A-Za-z0-9-' '_'; }
gs_start() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }
gs_holder() {
  case $2 in ''|*[!0-9]*) echo dead; return ;; esac
  if [ -d "/proc/$2" ]; then
    # its real uid (a process that went through a setuid program, e.g. apptainer's starter,
    # has /proc/PID owned by root, but keeps its real uid)
    o=$(sed -n 's/^Uid:[[:space:]]*\([0-9][0-9]*\).*/\1/p' "/proc/$2/status" 2>/dev/null)
    # a claim root made (the hub's machine, servers of per-user accounts) is held by the
    # process root handed it to; any other account's claim only by its own processes
    [ -z "$o" ] || [ "$o" = "$1" ] || [ "$1" = 0 ] || { echo foreign; return; }
    s=$(sed 's/^.*) //' "/proc/$2/stat" 2>/dev/null)
    case $s in Z*|X*) echo dead; return ;; '') [ -d "/proc/$2" ] && echo live || echo dead; return ;; esac
    [ -z "$3" ] || [ "$(printf '%s\n' "$s" | cut -d' ' -f20)" = "$3" ] || { echo dead; return; }
    echo live
  else
    case $(LC_ALL=C kill -0 "$2" 2>&1) in
      *"No such process"*) echo dead ;;
      '') echo live ;;
      *) echo hidden ;;
    esac
  fi
}
gs_state() {
  set -- "$1" "$2" $(stat -c '%u %Z' "$1" 2>/dev/null)
  [ -n "$4" ] || { echo "stale - 0"; return; }
  gs_age=$((gs_now - $4))
  [ "$gs_age" -ge 0 ] || gs_age=0
  gs_body=$(head -c 4096 "$1" 2>/dev/null)
  gs_u=$(printf '%s\n' "$gs_body" | sed -n 's/^uuid=//p' | head -n 1)
  if [ -n "$2" ] && [ -n "$gs_u" ] && [ "$(gs_key "$gs_u")" != "$2" ]; then echo "forged - $gs_age"; return; fi
  gs_h=$(printf '%s\n' "$gs_body" | sed -n 's/^hold=//p;s/^pid=//p' | tail -n 1)
  gs_pid=${gs_h%% *}
  gs_st=""
  case $gs_h in *' '*) gs_st=${gs_h#* } ;; esac
  case $(gs_holder "$3" "$gs_pid" "$gs_st") in
    live) echo "held ${gs_pid:--} $gs_age" ;;
    hidden) echo "hidden ${gs_pid:--} $gs_age" ;;
    foreign) echo "forged ${gs_pid:--} $gs_age" ;;
    *) if [ "$gs_age" -lt "$gs_grace" ]; then echo "pending ${gs_pid:--} $gs_age"; else echo "stale ${gs_pid:--} $gs_age"; fi ;;
  esac
}
gs_valid() { case $1 in held|hidden|pending) return 0 ;; esac; return 1; }
gs_ours() { [ -O "$1" ] && grep -qx "entry=$E" "$1" 2>/dev/null; }
# gs_legacy_each FUNC ARG…: FUNC FILE ARG… for each old-style entry (a regular file with uuid=
# lines and no '@' in its name); stops at FUNC's first non-zero status and returns it, or 3
# when there are more files than MAX_LEGACY
gs_legacy_each() {
  gs_fn=$1
  shift
  gs_n=0
  for gs_f in "$L"/*; do
    case ${gs_f##*/} in *@*|'*') continue ;; esac
    [ -f "$gs_f" ] && [ ! -L "$gs_f" ] || continue
    gs_n=$((gs_n + 1))
    [ "$gs_n" -le MAX_LEGACY ] || return 3
    grep -q '^uuid=' "$gs_f" 2>/dev/null || continue
    "$gs_fn" "$gs_f" "$@" || return
  done
}
""".replace("MAX_LEGACY", str(MAX_LEGACY))


def prelude(ledger_dir: str, *, shared: bool, grace: float, entry: str = "") -> str:
    """sh: ``$L`` (the ledger), ``$E`` (a session), the settings, and the functions that check
    the directory (``gs_check_ledger``) and judge a claim file (``gs_state FILE KEY``)."""
    return (
        f"L={q(ledger_dir.rstrip('/') or '/')}\n"
        f"E={q(entry)}\n"
        f"gs_shared={1 if shared else 0}\n"
        f"gs_grace={max(0, int(grace + 0.999))}\n"
        "gs_me=$(id -u)\n"
        "gs_now=$(date +%s)\n"
        + CHECK_FUNCS
        + STATE_FUNCS
    )


def wrap(body: str) -> str:
    """A script body as sent to a host: one ``{ … } </dev/null`` compound command (the shell
    parses all of it before running any, and no command reads the rest from stdin)."""
    return "{\n" + body.rstrip("\n") + "\n} </dev/null\n"


# --------------------------------------------------------------------------- probe


def probe_lines(ledger_dir: str, *, shared: bool, grace: float) -> str:
    """sh lines printing the ledger for the GPUs in ``$gs_uuids`` (one UUID a line):
    ``@@ledger ok|missing`` or ``@@ledger unsafe <kind> <path> <owner> <account>``, then per
    claim file ``@@claim <name> <state> <account> <pid or -> <age>`` and its values as
    ``key=value`` lines (one line each, control characters removed), ``@@flooded <uuid>
    <files>`` for a GPU with more files than a host needs, and ``@@end``."""
    body = prelude(ledger_dir, shared=shared, grace=grace) + rf"""gs_show() {{
  set -- "$1" "$2" $(gs_state "$1" "$2")
  echo "@@claim ${{1##*/}} $3 $(stat -c %U "$1" 2>/dev/null || echo '?') $4 $5"
  head -c 4096 "$1" 2>/dev/null | grep -E '^(uuid|entry|session|user|owner|hub|backend)=' | tr -d '\000-\010\013-\037\177' | cut -c1-250
}}
gs_check_ledger
case $? in
  0) echo "@@ledger ok" ;;
  2) echo "@@ledger missing" ;;
  *) echo "@@ledger unsafe $gs_problem"; echo "@@end"; exit 0 ;;
esac
if [ -d "$L" ]; then
  printf '%s\n' "$gs_uuids" | while IFS= read -r u; do
    [ -n "$u" ] || continue
    k=$(gs_key "$u")
    n=0
    for f in "$L/$k@"*; do
      [ -e "$f" ] || [ -L "$f" ] || continue
      n=$((n + 1))
      if [ "$n" -gt {MAX_SLOTS} ]; then echo "@@flooded $u $n"; break; fi
      [ -f "$f" ] && [ ! -L "$f" ] || continue
      gs_show "$f" "$k"
    done
  done
  gs_show_legacy() {{ gs_show "$1" ""; }}
  gs_legacy_each gs_show_legacy || echo "@@flooded * many"
fi
echo "@@end"
"""
    return body
