"""PURE: the marks a session directory carries for crash recovery, and the probe's listing
of them (sh builders; `scripts` puts them into the launch and probe scripts).

The launch script writes, right after it made the 0700 session directory ``$S``:

- ``$S/owner``: ``hub=<hub id>``, ``backend=<backend name>``, ``host=<the host's name>``
  — whose session this is (a hub reclaims only its own, on the host that made it);
- ``$S/launcher``: the launch script's pid — while it runs and no server was started yet,
  the session is being launched (copying data may take long) and is left alone.

`sessions_lines` lists the marked directories of one session root for the probe.
"""

from __future__ import annotations

import re
import shlex

q = shlex.quote

#: the most session directories a probe lists (a session root is one account's own)
MAX_SESSIONS = 4096
#: the file in a session directory that says whose it is (``hub=``, ``backend=``, ``host=``)
#: and the one holding the pid of the launch script that made it
OWNER_FILE = "owner"
LAUNCHER_FILE = "launcher"


def sessions_lines(session_root: str) -> str:
    """sh lines listing the session directories in ``session_root`` (when it is a directory
    of the running account) that carry an owner mark: ``@@sessions <account> <root>``, then per
    directory ``@@session <name> <pid or -> <server runs 0|1> <launch script runs 0|1> <age>``
    and its ``hub=`` / ``backend=`` lines (`inventory.parse_sessions` reads them). Shell
    built-ins only, but one ``stat`` per directory: a host with hundreds of sessions is
    listed in a fraction of a second."""
    return f"""gs_R={q(session_root.rstrip('/') or '/')}
gs_t=$(date +%s)
# gs_runs PID: the process exists and is no zombie (/proc read by the shell itself)
gs_runs() {{
  case $1 in ''|-|*[!0-9]*) return 1 ;; esac
  if [ -r "/proc/$1/stat" ]; then
    gs_st=""
    {{ read -r gs_st <"/proc/$1/stat"; }} 2>/dev/null
    case ${{gs_st##*) }} in Z*|X*|'') return 1 ;; esac
    return 0
  fi
  kill -0 "$1" 2>/dev/null
}}
gs_first() {{ gs_v=""; {{ read -r gs_v <"$1"; }} 2>/dev/null; case $gs_v in ''|*[!0-9]*) gs_v=- ;; esac; }}
if [ -d "$gs_R" ] && [ ! -L "$gs_R" ] && [ -O "$gs_R" ]; then
  echo "@@sessions $(id -un) $gs_R"
  gs_n=0
  for gs_d in "$gs_R"/*; do
    [ -d "$gs_d" ] && [ ! -L "$gs_d" ] && [ -f "$gs_d/{OWNER_FILE}" ] || continue
    gs_n=$((gs_n + 1))
    [ "$gs_n" -le {MAX_SESSIONS} ] || break
    gs_first "$gs_d/pid"; gs_p=$gs_v
    gs_first "$gs_d/{LAUNCHER_FILE}"; gs_l=$gs_v
    gs_a=0; gs_runs "$gs_p" && gs_a=1
    gs_b=0; [ "$gs_p" = - ] && gs_runs "$gs_l" && gs_b=1
    gs_m=0
    for gs_x in $(stat -c %Y "$gs_d" "$gs_d/pid" "$gs_d/{LAUNCHER_FILE}" 2>/dev/null); do
      [ "$gs_x" -le "$gs_m" ] || gs_m=$gs_x
    done
    gs_age=$((gs_t - gs_m))
    [ "$gs_age" -ge 0 ] || gs_age=0
    echo "@@session ${{gs_d##*/}} $gs_p $gs_a $gs_b $gs_age"
    while IFS= read -r gs_line; do
      case $gs_line in hub=*|backend=*) printf '%.250s\\n' "$gs_line" ;; esac
    done <"$gs_d/{OWNER_FILE}"
  done
fi
"""


def owner_lines(hub: str, backend: str) -> str:
    """sh lines for the launch script, right after it made ``$S``: who owns the session
    (``$S/owner``: ``hub=``, ``backend=``, ``host=`` this host's name) and which process is
    launching it (``$S/launcher``: the script's pid, so a look for orphans leaves a launch in
    progress alone)."""
    mark = "".join(f"{k}={re.sub(r'[^ -~]', '?', v)[:200]}\n" for k, v in (("hub", hub), ("backend", backend)))
    return (f"printf '%s' {q(mark)} >\"$S/{OWNER_FILE}\" && printf 'host=%s\\n' \"$(uname -n)\" >>\"$S/{OWNER_FILE}\"\n"
            f"echo $$ >\"$S/{LAUNCHER_FILE}\"\n")
