"""Claiming GPUs in the on-host ledger (`ledger` has the rules): the claim script, pure, and
what it answered."""

from __future__ import annotations

import shlex
from typing import Sequence

from .ledger import EXIT_CONFLICT, EXIT_LEDGER, MAX_SLOTS, gpu_key, label, prelude, wrap

q = shlex.quote


def claim_script(
    ledger_dir: str,
    entry: str,
    uuids: Sequence[str],
    *,
    session_dir: str,
    owner: str,
    user: str,
    grace: float,
    shared: bool,
    hub: str = "",
    backend: str = "",
) -> str:
    """Claim ``uuids`` for session ``entry``: check (and in a private ledger, make) the
    directory; for each GPU, in key order: refuse (``@@conflict <uuid>``, exit
    `EXIT_CONFLICT`) when a valid claim of another session is there, remove our own stale
    files, create the first free slot exclusively; then check every GPU again and back off
    (removing what it made) if another valid claim appeared. Prints ``@@claimed <file>…``.
    An unsafe ledger: ``@@ledger-unsafe <kind> <path> <owner> <account>``, exit `EXIT_LEDGER`.
    ``hub`` / ``backend``: the claiming hub's id and backend name (the files' ``hub=`` and
    ``backend=`` lines: only that hub's reconciler may reclaim them)."""
    gpus = sorted({gpu_key(u): label(u) for u in uuids}.items())
    fields = [("entry", entry), ("session", session_dir), ("user", user), ("owner", owner)]
    if hub:  # outside a hub (no id) claims carry no hub: nothing ever reclaims them
        fields += [("hub", hub), ("backend", backend)]
    header = "".join(f"{k}={label(v)}\n" for k, v in fields)
    pairs = " ".join(f"{q(k)} {q(u)}" for k, u in gpus)
    if shared:  # several accounts: only root may make it (the admin's command is in the message)
        missing = f'  echo "@@ledger-unsafe missing $L - $(id -un)"; exit {EXIT_LEDGER}\n'
    else:
        missing = (f'  (umask 077; mkdir -p "$L") 2>/dev/null || '
                   f'{{ echo "@@ledger-unsafe cannot-create $L - $(id -un)"; exit {EXIT_LEDGER}; }}\n'
                   "  gs_check_ledger\n  r=$?\n")
    body = prelude(ledger_dir, shared=shared, grace=grace, entry=entry) + rf"""umask 022
gs_made=""  # names of the files made so far (letters, digits, '_', '-', '@': safe to split)
gs_undo() {{ for n in $gs_made; do rm -f "$L/$n"; done; }}
# gs_busy KEY UUID: 0 when another session holds a valid claim on it (own stale files go)
gs_busy() {{
  n=0
  for f in "$L/$1@"*; do
    [ -e "$f" ] || [ -L "$f" ] || continue
    n=$((n + 1))
    [ "$n" -le {MAX_SLOTS} ] || return 0
    [ -f "$f" ] && [ ! -L "$f" ] || continue
    case " $gs_made " in *" ${{f##*/}} "*) continue ;; esac
    gs_ours "$f" && continue
    set -- "$1" "$2" $(gs_state "$f" "$1")
    gs_valid "$3" && return 0
    [ "$3" = stale ] && [ -O "$f" ] && rm -f "$f"
  done
  ! gs_legacy_each gs_legacy_free "$2"
}}
# gs_legacy_free FILE UUID: 1 when the old-style entry FILE validly holds UUID
gs_legacy_free() {{
  head -c 4096 "$1" 2>/dev/null | grep -qxF "uuid=$2" || return 0
  set -- "$1" "$2" $(gs_state "$1" "")
  gs_valid "$3" && return 1
  [ "$3" = stale ] && [ -O "$1" ] && rm -f "$1"
  return 0
}}
# gs_take KEY UUID: create the first free slot (an existing file there that is valid: refuse)
gs_take() {{
  i=1
  while [ "$i" -le {MAX_SLOTS} ]; do
    f="$L/$1@$i"
    if [ ! -e "$f" ] && [ ! -L "$f" ]; then
      if (set -C; {{ printf 'uuid=%s\n%s' "$2" {q(header)}; printf 'created=%s\nhold=%s %s\n' "$gs_now" "$$" "$(gs_start $$)"; }} >"$f") 2>/dev/null \
        && [ -f "$f" ] && [ ! -L "$f" ] && [ -O "$f" ]; then
        gs_made="$gs_made $1@$i"
        return 0
      fi
      [ -e "$f" ] || [ -L "$f" ] || return 2
    fi
    if [ -f "$f" ] && [ ! -L "$f" ] && ! gs_ours "$f"; then
      set -- "$1" "$2" $(gs_state "$f" "$1")
      gs_valid "$3" && return 1
    fi
    i=$((i + 1))
  done
  return 1
}}
gs_check_ledger
r=$?
if [ "$r" = 2 ]; then
{missing}fi
[ "$r" = 0 ] || {{ echo "@@ledger-unsafe $gs_problem"; exit {EXIT_LEDGER}; }}
set -- {pairs}
while [ $# -ge 2 ]; do
  if gs_busy "$1" "$2"; then echo "@@conflict $2"; gs_undo; exit {EXIT_CONFLICT}; fi
  gs_take "$1" "$2"
  case $? in
    0) ;;
    1) echo "@@conflict $2"; gs_undo; exit {EXIT_CONFLICT} ;;
    *) echo "cannot write a claim file in $L" >&2; gs_undo; exit {EXIT_LEDGER} ;;
  esac
  shift 2
done
set -- {pairs}
while [ $# -ge 2 ]; do
  if gs_busy "$1" "$2"; then echo "@@conflict $2"; gs_undo; exit {EXIT_CONFLICT}; fi
  shift 2
done
echo "@@claimed$gs_made"
"""
    return wrap(body)


def claimed_files(stdout: str) -> tuple[str, ...] | None:
    """The claim files a successful claim script made (None: it did not claim)."""
    for line in stdout.splitlines():
        if line == "@@claimed" or line.startswith("@@claimed "):
            return tuple(line.split()[1:])
    return None
