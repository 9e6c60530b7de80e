"""The scripts that look without changing anything of a live server (pure): the GPU probe
(GPUs, ledger claims, session directories), the wait for a new server's socket, and the poll
(which cleans up a server it finds gone). `scripts` has the shared pieces."""

from __future__ import annotations

import shlex
from typing import Sequence

from ...gpu import NVIDIA_SMI_ARGS
from .ledger import probe_lines
from .ledger_hold import release_lines
from .scripts import SH_FUNCS, SOCKET_NAME, remove_session_func, ticks, unlink_data_lines, wrap
from .session_marks import sessions_lines

q = shlex.quote


def probe_script(nvidia_smi: Sequence[str], ledger_dir: str, *, shared: bool = False, grace: float = 120,
                 session_root: str | None = None) -> str:
    """Print the GPU inventory and the ledger's claims on those GPUs (`inventory.parse_probe`
    reads it): ``@@gpus missing`` (no nvidia-smi: no GPUs) or ``@@gpus <status>`` +
    nvidia-smi's output, then (with ``session_root``) what `sessions_lines` prints, then what
    `probe_lines` prints. ``shared``: several accounts use the ledger (it must be root's)."""
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
    return wrap(body + sessions + probe_lines(ledger_dir, shared=shared, grace=grace))



def wait_script(session_dir: str, pid: int, timeout: float, log_lines: int = 30) -> str:
    """Wait up to ``timeout`` s for the server's socket. Prints ``@@ready``, ``@@waiting``
    (still starting) or ``@@dead`` followed by the last ``log_lines`` lines of server.log."""
    body = f"""{SH_FUNCS}S={q(session_dir)}
p={int(pid)}
n={ticks(timeout)}
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
    return wrap(body)


def poll_script(
    session_dir: str, pid: int, *, ledger_dir: str | None = None, ledger_entry: str | None = None,
    data_link: str | None = None, ledger_claims: Sequence[str] = (), flush_wait: float = 0,
) -> str:
    """Print ``@@running`` when ``pid`` is alive and still this session's server, else clean
    up (the hub calls no stop() for a server its poll found gone: unmount its data — after
    waiting up to ``flush_wait`` s for their uploads —, remove the session directory, the
    data link and the ledger entry) and print ``@@gone``."""
    release = release_lines(ledger_dir, ledger_claims, ledger_entry, indent="    ")
    body = f"""{SH_FUNCS}S={q(session_dir)}
{remove_session_func(session_dir, flush_wait)}p={int(pid)}
cur=$(as_account cat "$S/pid" 2>/dev/null)
if [ "$cur" = "$p" ] && alive "$p"; then
  echo "@@running"
else
  if [ "$cur" = "$p" ] || [ ! -e "$S" ]; then
{unlink_data_lines(data_link, "    ")}    remove_session
{release}  fi
  echo "@@gone"
fi
"""
    return wrap(body)
