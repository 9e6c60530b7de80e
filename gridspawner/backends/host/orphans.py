"""PURE: which sessions on a host are orphans, and the sh script that reclaims one.

An *orphan* is a session of this hub and backend (its GPU claims' ``hub=``/``backend=``
lines, or its directory's owner mark) that no server the hub knows uses, that is not being
launched by this hub process, and in which nothing changed for ``grace`` seconds: what a
hub killed mid-launch or mid-stop leaves behind. `find_orphans` decides from what the probe
listed (no extra look at the host); `reclaim_script` decides again on the host, at the moment
it acts, and does only what is still right then:

- a session directory that is not ours, carries another hub's mark, changed within
  ``grace``, or whose launch script still runs, is left alone;
- the server is stopped like a stop does (INT → TERM → KILL of its process group; only when
  its pid file names a live process that leads its own session, so a reused pid is never
  signalled), then the directory is removed through ``remove_session`` (data mounts are
  unmounted first; nothing is removed while a mount point is left below it);
- each GPU claim is freed only when its holder is gone and it is ``grace`` old
  (`ledger_hold.free_dead_claims_script`): a GPU whose process still runs is never freed.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from . import scripts
from .ledger_hold import free_dead_claims_script
from .inventory import Inventory
from .session_marks import LAUNCHER_FILE, OWNER_FILE

q = shlex.quote


@dataclass(frozen=True)
class Orphan:
    """A session to reclaim on ``host``, as ``account``: its directory, the claim files seen
    for it (names in the ledger), the GPUs they name, its server's pid when known, the hub
    user it was for, and why it is an orphan (for the log)."""

    host: str
    session_dir: str
    account: str
    claims: tuple[str, ...] = ()
    gpus: tuple[str, ...] = ()
    pid: int | None = None
    user: str = ""
    why: str = ""


@dataclass
class _Seen:
    account: str = ""
    claims: list[str] = field(default_factory=list)
    gpus: list[str] = field(default_factory=list)
    pid: int | None = None
    user: str = ""
    young: bool = False
    listed: bool = False  # its directory was listed (with an owner mark of ours)
    running: bool = False
    held: bool = False  # a claim's holder runs


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def find_orphans(
    inventories: Mapping[str, Inventory],
    *,
    hub: str,
    backend: str,
    known_sessions: Iterable[str],
    in_flight: Iterable[str],
    grace: float,
) -> list[Orphan]:
    """The orphans among what ``inventories`` (host → its probe) show. ``known_sessions``:
    the session directories of every server the hub knows on this backend (on any host: a
    directory on a file system several hosts share is seen by each); ``in_flight``: the
    session names (slugs) being launched by this process. Nothing is an orphan without a
    ``hub`` id. Each directory is reclaimed once, on the host whose probe saw its claims
    (else the first that listed it)."""
    if not hub:
        return []
    known = {k.rstrip("/") for k in known_sessions if isinstance(k, str)}
    flying = set(in_flight)
    seen: dict[tuple[str, str], _Seen] = {}
    order: list[tuple[str, str]] = []

    def slot(host: str, session: str) -> _Seen | None:
        session = session.rstrip("/")
        if not session or session in known or _basename(session) in flying:
            return None
        key = (host, session)
        if key not in seen:
            seen[key] = _Seen()
            order.append(key)
        return seen[key]

    for host, inv in inventories.items():
        for e in inv.entries:
            if e.hub != hub or e.backend != backend or not e.session or e.state == "forged":
                continue
            s = slot(host, e.session)
            if s is None:
                continue
            s.account = s.account or e.account
            s.claims.append(e.name)
            s.gpus.extend(e.uuids)
            s.user = s.user or e.user
            s.held = s.held or e.state in ("held", "hidden")
            if e.state in ("held", "hidden") and e.pid:
                s.pid = s.pid or e.pid
            s.young = s.young or e.age < grace
        root = (inv.sessions_root or "").rstrip("/")
        if inv.sessions_account is None or not root:
            continue
        for d in inv.sessions:
            if d.hub != hub or d.backend != backend:
                continue
            s = slot(host, f"{root}/{d.name}")
            if s is None:
                continue
            s.account = s.account or inv.sessions_account
            s.listed = True
            s.running = d.running
            s.pid = s.pid or d.pid
            s.young = s.young or d.age < grace or d.launching

    out: list[Orphan] = []
    done: set[str] = set()
    # a directory several hosts list (a shared file system): reclaimed where its claims are
    for host, session in sorted(order, key=lambda k: (not seen[k].claims, order.index(k))):
        s = seen[(host, session)]
        if s.young or session in done or not s.account:
            continue
        done.add(session)
        if s.running or s.held:
            why = f"its server (process {s.pid or '?'}) runs, but no server this hub knows uses it"
        elif s.listed:
            why = "its server is gone, but its session directory was left (a launch or stop cut short)"
        else:
            why = "its GPU claim was left by a launch or stop cut short"
        out.append(Orphan(host=host, session_dir=session, account=s.account, claims=tuple(s.claims),
                          gpus=tuple(dict.fromkeys(s.gpus)), pid=s.pid, user=s.user, why=why))
    return out


# --------------------------------------------------------------------------- on the host


def _guard(session_dir: str, *, hub: str, backend: str, grace: float, claim_files: tuple[str, ...]) -> str:
    """The first part of `reclaim_script`: checks the session directory again, on the host,
    now; ``exit``s with ``@@kept <why>`` when it must be left alone (``gone``: neither it nor
    a claim file of it is left)."""
    owner, launcher = OWNER_FILE, LAUNCHER_FILE
    marked_by_claims = bool(claim_files)
    files = " ".join(q(f) for f in claim_files)
    return scripts.SH_FUNCS + f"""S={q(session_dir)}
gs_t=$(date +%s)
if [ ! -e "$S" ] && [ ! -L "$S" ]; then
  gs_left=""
  for gs_f in {files}; do
    [ -O "$gs_f" ] && grep -qxF {q("session=" + session_dir)} "$gs_f" 2>/dev/null && gs_left=1
  done
  [ -n "$gs_left" ] || {{ echo "@@kept gone"; exit 0; }}
fi
if [ -e "$S" ] || [ -L "$S" ]; then
  # ours: our own, or (root) one root handed to a user's account in root's session root
  if [ -L "$S" ] || [ ! -d "$S" ] || {{ [ ! -O "$S" ] && {{ [ "$(id -u)" != 0 ] || [ -L "${{S%/*}}" ] || [ ! -O "${{S%/*}}" ]; }}; }}; then
    echo "@@kept not-ours"; exit 0
  fi
  if [ -f "$S/{owner}" ]; then
    grep -qxF {q('hub=' + hub)} "$S/{owner}" && grep -qxF {q('backend=' + backend)} "$S/{owner}" \\
      || {{ echo "@@kept foreign"; exit 0; }}
    gs_h=$(sed -n 's/^host=//p' "$S/{owner}" | head -n 1)
    [ -z "$gs_h" ] || [ "$gs_h" = "$(uname -n)" ] || {{ echo "@@kept elsewhere $gs_h"; exit 0; }}
  elif [ {1 if marked_by_claims else 0} = 0 ]; then
    echo "@@kept unmarked"; exit 0
  fi
  gs_m=$(stat -c %Y "$S" "$S/pid" "$S/{launcher}" 2>/dev/null | sort -n | tail -n 1)
  gs_age=$((gs_t - ${{gs_m:-0}}))
  if [ "$gs_age" -lt {max(0, int(grace))} ]; then echo "@@kept recent $gs_age"; exit 0; fi
  # read as the directory's owner, like every file in it
  p=$(as_account head -n 1 "$S/pid" 2>/dev/null)
  # not a process id (0 or 1 would signal far more than a server): no server to stop
  case $p in ''|*[!0-9]*|0|1) p=""; rm -f "$S/pid" ;; esac
  if [ -z "$p" ]; then
    l=$(as_account head -c 32 "$S/{launcher}" 2>/dev/null)
    case $l in ''|*[!0-9]*) ;; *) alive "$l" && {{ echo "@@kept launching"; exit 0; }} ;; esac
  elif [ -r "/proc/$p/stat" ] && alive "$p" && [ "$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f4)" != "$p" ]; then
    # a server leads its own session (setsid): this pid was reused by another process
    rm -f "$S/pid"
  fi
fi
"""


def reclaim_script(
    session_dir: str,
    claims: Iterable[str] = (),
    *,
    ledger_dir: str,
    hub: str,
    backend: str,
    grace: float,
    shared: bool,
    interrupt_timeout: float = 10,
    term_timeout: float = 5,
    kill_timeout: float = 5,
    flush_wait: float = 0,
) -> str:
    """Reclaim the orphan session ``session_dir`` (see the module): prints ``@@kept <why>``
    and changes nothing, or stops its server (``@@stopped <signal or none>``; ``@@survived``:
    not even KILL ended it, and then its claims are kept), removes its directory
    (its data mounts' pending uploads waited for up to ``flush_wait`` s, like a stop;
    ``@@mounts-left`` when a data mount could not be unmounted: the directory stays) and
    frees each of ``claims`` whose holder is gone (``@@freed <name>`` / ``@@kept <name>
    <state>``)."""
    claims = tuple(c for c in claims if c and "/" not in c and c not in (".", ".."))
    files = tuple(ledger_dir.rstrip("/") + "/" + c for c in claims)
    guard = scripts.wrap(_guard(session_dir, hub=hub, backend=backend, grace=grace, claim_files=files))
    stop = scripts.stop_script(session_dir, None, interrupt_timeout=interrupt_timeout, term_timeout=term_timeout,
                               kill_timeout=kill_timeout, flush_wait=flush_wait)
    free = free_dead_claims_script(ledger_dir, claims, grace=grace, shared=shared,
                                          session=session_dir) if claims else ""
    return guard + stop + free


def parse_reclaim(stdout: str) -> tuple[str, list[str], list[str], str | None]:
    """What `reclaim_script` printed: (what happened to the session: ``stopped <signal or
    none>``, ``survived``, ``kept <why>``, or "" when the script did not get that far; the
    claims freed; the claims kept, as "name state"; the mounts left, or None)."""
    stopped = scripts.parse_marker(stdout, "stopped")
    lines = stdout.splitlines()
    kept_lines = [ln[len("@@kept "):] for ln in lines if ln.startswith("@@kept ")]
    if scripts.parse_marker(stdout, "survived") is not None:
        how = "survived"
    elif stopped is not None:
        how = f"stopped {stopped}"
    else:
        how = f"kept {kept_lines[0]}" if kept_lines else ""
    freed = [ln.split()[1] for ln in lines if ln.startswith("@@freed ") and len(ln.split()) > 1]
    held = kept_lines if how.startswith(("stopped", "survived")) else []
    return how, freed, held, scripts.parse_marker(stdout, "mounts-left")
