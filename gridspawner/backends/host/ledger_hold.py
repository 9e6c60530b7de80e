"""A ledger claim's life after the claim script made it (`ledger` has the rules): the launch
takes it over and hands it to the server (sh lines of the launch script), poll and stop
release it, and a reconciler frees the claims nothing holds any more. Pure builders."""

from __future__ import annotations

import shlex
from typing import Sequence

from .ledger import EXIT_CLAIM_LOST, EXIT_LEDGER, STATE_FUNCS, prelude, wrap

q = shlex.quote


def take_over_lines(ledger_dir: str, entry: str, claims: Sequence[str]) -> str:
    """sh lines for the launch script, before anything slow: each claim file must still be
    ours (else ``@@claim-lost`` and exit `EXIT_CLAIM_LOST`), and this script's shell holds
    it from now on (a data copy may take longer than ``ledger_grace``). Claim files of this
    session's earlier server (one the hub lost, stopped by now) are removed. Variables and
    functions are prefixed ``gs_`` (the launch script's own are not)."""
    if not claims:
        return ""
    files = " ".join(q(ledger_dir.rstrip("/") + "/" + c) for c in claims)
    names = q(" " + " ".join(claims) + " ")
    has_entry = q("entry=" + entry)
    return STATE_FUNCS + f"""gs_L={q(ledger_dir.rstrip('/') or '/')}
for gs_f in "$gs_L"/*@*; do
  [ -f "$gs_f" ] && [ ! -L "$gs_f" ] && [ -O "$gs_f" ] || continue
  case {names} in *" ${{gs_f##*/}} "*) continue ;; esac
  grep -qx {has_entry} "$gs_f" 2>/dev/null || continue
  gs_h=$(sed -n 's/^hold=//p' "$gs_f" | tail -n 1)
  case $gs_h in *" "*) gs_s=${{gs_h#* }} ;; *) gs_s="" ;; esac
  case $(gs_holder "$(id -u)" "${{gs_h%% *}}" "$gs_s") in live|hidden) ;; *) rm -f "$gs_f" ;; esac
done
for gs_c in {files}; do
  if [ -f "$gs_c" ] && [ ! -L "$gs_c" ] && [ -O "$gs_c" ] && grep -qx {has_entry} "$gs_c"; then
    printf 'hold=%s %s\n' "$$" "$(gs_start $$)" >>"$gs_c"
  else echo "@@claim-lost ${{gs_c##*/}}"; exit {EXIT_CLAIM_LOST}; fi
done
"""


def hold_lines(ledger_dir: str, claims: Sequence[str], pid_var: str = "pid") -> str:
    """sh lines for the launch script once the server runs (after `take_over_lines`): the
    server's process (``$<pid_var>``) holds the claims."""
    if not claims:
        return ""
    files = " ".join(q(ledger_dir.rstrip("/") + "/" + c) for c in claims)
    return f"""for gs_c in {files}; do
  [ -f "$gs_c" ] && [ -O "$gs_c" ] && printf 'hold=%s %s\n' "${pid_var}" "$(gs_start "${pid_var}")" >>"$gs_c"
done
"""


def release_lines(ledger_dir: str | None, claims: Sequence[str] = (), legacy_entry: str | None = None,
                  indent: str = "") -> str:
    """sh lines removing a server's claim files (only files this account owns)."""
    if not ledger_dir:
        return ""
    names = list(claims) + ([legacy_entry] if legacy_entry else [])
    return "".join(
        f'{indent}[ -O {q(ledger_dir.rstrip("/") + "/" + n)} ] && rm -f {q(ledger_dir.rstrip("/") + "/" + n)}\n'
        for n in names
    )


def release_script(ledger_dir: str, claims: Sequence[str]) -> str:
    """Remove the claim files ``claims`` (missing is fine; other accounts' are never touched)."""
    return wrap(release_lines(ledger_dir, claims) or ":\n")


def free_dead_claims_script(ledger_dir: str, claims: Sequence[str], *, grace: float, shared: bool,
                            session: str | None = None) -> str:
    """For a reconciler: remove each of ``claims`` that this account owns and that is still
    ``stale`` or ``forged`` when looked at again (a claim that came back to life is kept).
    ``session``: only files that still say ``session=<session>`` (a name is reused by the next
    claim of its GPU). Prints ``@@freed <name>`` or ``@@kept <name> <state>`` for each (state
    ``gone``, ``not-ours`` or ``other-session`` for a file it did not judge)."""
    names = " ".join(q(c) for c in claims if "/" not in c and c not in (".", ".."))
    mine = f'  grep -qxF {q("session=" + session)} "$f" 2>/dev/null || {{ echo "@@kept $n other-session"; continue; }}\n' \
        if session else ""
    body = prelude(ledger_dir, shared=shared, grace=grace) + f"""gs_check_ledger || {{ echo "@@ledger-unsafe $gs_problem"; exit {EXIT_LEDGER}; }}
for n in {names}; do
  f="$L/$n"
  [ -e "$f" ] || [ -L "$f" ] || {{ echo "@@kept $n gone"; continue; }}
  [ -f "$f" ] && [ ! -L "$f" ] && [ -O "$f" ] || {{ echo "@@kept $n not-ours"; continue; }}
{mine}  case $n in *@*) k=${{n%@*}} ;; *) k="" ;; esac
  set -- $(gs_state "$f" "$k")
  case $1 in stale|forged) rm -f "$f" && echo "@@freed $n" ;; *) echo "@@kept $n $1" ;; esac
done
"""
    return wrap(body)
