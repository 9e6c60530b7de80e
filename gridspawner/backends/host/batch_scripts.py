"""PURE: the sh scripts of host batch jobs (notebook runs): start, poll and collect. The
launch's pieces are the servers' (`scripts`, `ledger`, `session_marks`, `hostcmd`): the same
0700 session directory, owner marks, GPU claims handed over, data mounts and their removal.

A job runs in ``$S/work`` (the job's files are written there first; a link ``data`` → ``$S/data``
when it has data mounts) as a process group of its own, under a small sh that records its pid
in ``$S/pid`` and, when the command ends, its exit status in ``$S/exit``; its stdout and
stderr go to ``$S/log``. Nothing is removed when it ends: `collect_script` prints its outputs
(base64) and the log's tail, then the backend's stop script removes the session and frees
its GPUs. CONTAINS SECRETS (mount credentials, the environment): never log a script.
"""

from __future__ import annotations

import base64
import shlex
from typing import Mapping, Sequence

from ...mounts import hostcmd
from ...mounts.hostcmd import EXIT_MOUNT
from . import ledger
from .scripts import EXIT_BUSY, EXIT_MOUNTS_LEFT, EXIT_NO_START, EXIT_ROOT, LaunchSpec, export_lines, remove_session_func
from .session_marks import owner_lines

q = shlex.quote

WORK = "work"
#: the most bytes of one output file brought back (a larger one is reported, not sent)
MAX_OUTPUT = 256 * 1024 * 1024
#: the job's wrapper: records its pid (the session's id), runs the command (no exec: it
#: waits for it) and records its exit status
_RUN_RECORDING_EXIT = ('echo $$ >"$1/pid.new" && mv -f "$1/pid.new" "$1/pid" || exit 126; S=$1; shift; '
                       '"$@"; rc=$?; echo "$rc" >"$S/exit.new" && mv -f "$S/exit.new" "$S/exit"; exit "$rc"')
_FUNCS = r"""alive() {
  [ -n "$1" ] || return 1
  if [ -r "/proc/$1/stat" ]; then
    case "$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null)" in Z*|X*|'') return 1 ;; esac
    return 0
  fi
  kill -0 "$1" 2>/dev/null
}
nap() { sleep 0.1 2>/dev/null || sleep 1; }
"""


def _wrap(body: str) -> str:
    return "{\n" + body.rstrip("\n") + "\n} </dev/null\n"


def _file_name(name: str) -> str:
    if not isinstance(name, str) or not name or "/" in name or name in (".", "..") or not name.isprintable():
        raise ValueError(f"unsafe job file name {name!r}")
    return name


def write_files(files: Mapping[str, bytes]) -> str:
    """sh lines writing each file (name → bytes) into the current directory, base64 in a
    here-document (any bytes, no quoting of the content)."""
    out = []
    for name, data in files.items():
        text = base64.encodebytes(data).decode()
        out.append(f"base64 -d >{q(_file_name(name))} <<'GS_FILE_END'\n{text}GS_FILE_END\n")
    return "".join(out)


def in_work_dir(session_dir: str, argv: Sequence[str]) -> tuple[str, ...]:
    """``argv`` started from the job's work directory (also inside a container, whose own
    working directory may be another: the session directory is bound at the same path)."""
    return ("/bin/sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", f"{session_dir.rstrip('/')}/{WORK}", *argv)


def batch_script(spec: LaunchSpec, files: Mapping[str, bytes], job_env: Mapping[str, str],
                 data_name: str = "data") -> str:
    """Start ``spec.cmd`` in ``$S/work`` with ``files`` there; print ``@@pid <pid>``. Exit
    statuses as the server's launch script (`scripts`). CONTAINS SECRETS."""
    take_over = record_pid = ""
    if spec.ledger_dir and spec.ledger_entry and spec.ledger_claims:
        take_over = ledger.take_over_lines(spec.ledger_dir, spec.ledger_entry, spec.ledger_claims)
        record_pid = ledger.hold_lines(spec.ledger_dir, spec.ledger_claims)
    prefix = f"{{\n{spec.prefix.rstrip()}\n}} >&2\n" if spec.prefix.strip() else ""
    mount = link = ""
    if spec.mounts:
        fragment = hostcmd.mount_fragment(spec.session_dir, spec.mounts, tool=spec.mount_tool, wait=spec.mount_wait)
        data = hostcmd.data_dir_of(spec.session_dir)
        checks = "".join(f" && ls -A {q(data + '/' + m.target)} >/dev/null" for m in spec.mounts if m.mode == "mount")
        mount = f"(\n{fragment.rstrip()}\n){checks} || {{ remove_session; exit {EXIT_MOUNT}; }}\n"
        link = f'ln -s "$S/data" {q(_file_name(data_name))}\n'
    command = " ".join(q(a) for a in spec.cmd)
    body = f"""{_FUNCS}umask 077
R={q(spec.session_root)}
S={q(spec.session_dir)}
{remove_session_func(spec.session_dir, spec.flush_wait)}mkdir -p "$R" 2>/dev/null
if [ -L "$R" ] || [ ! -d "$R" ] || [ ! -O "$R" ]; then
  echo "session root $R is not a directory owned by $(id -un)" >&2
  exit {EXIT_ROOT}
fi
chmod 700 "$R" || exit {EXIT_ROOT}
{take_over}if [ -d "$S" ]; then
  old=$(cat "$S/pid" 2>/dev/null)
  if alive "$old"; then
    echo "@@busy $old"
    exit {EXIT_BUSY}
  fi
  remove_session || exit {EXIT_MOUNTS_LEFT}
fi
mkdir -m 700 "$S" || exit {EXIT_ROOT}
{owner_lines(spec.hub, spec.backend) if spec.hub else ""}echo "kind=run" >>"$S/owner"
{mount}mkdir -m 700 "$S/{WORK}" && cd "$S/{WORK}" || {{ remove_session; exit {EXIT_ROOT}; }}
{link}{write_files(files)}{export_lines({**spec.env, **job_env})}{prefix}setsid -f /bin/sh -c {q(_RUN_RECORDING_EXIT)} sh "$S" {command} >"$S/log" 2>&1 </dev/null
n=100
while [ ! -s "$S/pid" ] && [ "$n" -gt 0 ]; do nap; n=$((n - 1)); done
pid=$(cat "$S/pid" 2>/dev/null)
if [ -z "$pid" ]; then
  echo "the job did not start:" >&2
  tail -n 20 "$S/log" >&2 2>/dev/null
  remove_session
  exit {EXIT_NO_START}
fi
{record_pid}echo "@@pid $pid"
"""
    return _wrap(body)


def batch_poll_script(session_dir: str, pid: int) -> str:
    """``@@running`` while the job's process lives, else ``@@ended <exit status or none>``
    (``none``: the session is gone or the job left no status); removes nothing."""
    body = f"""{_FUNCS}S={q(session_dir)}
p={int(pid)}
cur=$(cat "$S/pid" 2>/dev/null)
if [ "$cur" = "$p" ] && alive "$p"; then
  echo "@@running"
else
  rc=$(cat "$S/exit" 2>/dev/null)
  case $rc in ''|*[!0-9]*) rc=none ;; esac
  echo "@@ended $rc"
fi
"""
    return _wrap(body)


def collect_script(session_dir: str, outputs: Sequence[str], log_tail: int) -> str:
    """Print each output that exists (``@@file <name>`` + base64 + ``@@end``; ``@@too-big
    <name> <bytes>`` over `MAX_OUTPUT`), ``@@exit <status or none>`` and ``@@log`` + the
    base64 of the log's last ``log_tail`` bytes + ``@@end``."""
    lines = [f"S={q(session_dir)}\n", f'W="$S/{WORK}"\n']
    for name in outputs:
        f = q(_file_name(name))
        lines.append(f'if [ -f "$W"/{f} ] && [ ! -L "$W"/{f} ]; then\n'
                     f'  n=$(wc -c <"$W"/{f})\n'
                     f'  if [ "$n" -gt {MAX_OUTPUT} ]; then echo "@@too-big {name} $n"; else\n'
                     f'  echo "@@file {name}"; base64 <"$W"/{f}; echo "@@end"; fi\n'
                     "fi\n")
    lines.append('rc=$(cat "$S/exit" 2>/dev/null); case $rc in \'\'|*[!0-9]*) rc=none ;; esac; echo "@@exit $rc"\n')
    lines.append(f'echo "@@log"; [ -f "$S/log" ] && tail -c {int(log_tail)} "$S/log" | base64; echo "@@end"\n')
    return _wrap("".join(lines))


def parse_collect(stdout: str) -> tuple[int | None, dict[str, bytes], str, list[str]]:
    """(exit status, files, log tail, outputs too big to bring back) from `collect_script`."""
    files: dict[str, bytes] = {}
    too_big: list[str] = []
    exit_code: int | None = None
    log = ""
    current: str | None = None
    chunk: list[str] = []
    for line in stdout.splitlines():
        if current is not None:
            if line == "@@end":
                data = base64.b64decode("".join(chunk))
                if current == "\0log":
                    log = data.decode("utf-8", "replace")
                else:
                    files[current] = data
                current, chunk = None, []
            else:
                chunk.append(line)
        elif line.startswith("@@file "):
            current = line[7:]
        elif line == "@@log":
            current = "\0log"
        elif line.startswith("@@exit "):
            value = line[7:].strip()
            exit_code = int(value) if value.isdigit() else None
        elif line.startswith("@@too-big "):
            too_big.append(line[10:])
    return exit_code, files, log, too_big


def kill_tree_script(session_dir: str, pid: int) -> str:
    """SIGKILL the job's process and every descendant, when ``$S/pid`` still names ``pid``.
    Needed before the stop ladder: a kernel papermill starts runs in a session (and process
    group) of its own, which a signal to the job's group never reaches."""
    body = f"""S={q(session_dir)}
p={int(pid)}
[ "$(cat "$S/pid" 2>/dev/null)" = "$p" ] || exit 0
kids() {{
  if [ -r "/proc/$1/task/$1/children" ]; then cat /proc/"$1"/task/*/children 2>/dev/null
  else ps -e -o pid= -o ppid= 2>/dev/null | awk -v p="$1" '$2 == p {{ print $1 }}'; fi
}}
todo=$p; all=""
while [ -n "$todo" ]; do
  next=""
  for c in $todo; do all="$all $c"; next="$next $(kids "$c")"; done
  todo=$(echo $next)
done
kill -STOP $all 2>/dev/null
kill -KILL $all 2>/dev/null
echo "@@killed$all"
"""
    return _wrap(body)
