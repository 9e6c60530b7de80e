"""PURE: the sh scripts of host batch jobs (notebook runs): start, poll and collect. The
launch's pieces are the servers' (`scripts`, `confine`, `ledger`, `session_marks`, `hostcmd`):
the same 0700 session directory (handed to the user's account as root), owner marks, GPU
claims handed over, cgroup limits, data mounts and their removal; the job runs as the account
and every later read of its files (pid, exit status, log, outputs) is done as the account.

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

from .confine import AS_ACCOUNT, as_account_script
from .launch_scripts import LaunchSpec, session_setup_lines, start_lines
from .scripts import EXIT_ROOT, SH_FUNCS, export_lines

q = shlex.quote

WORK = "work"
#: the most bytes of one output file brought back (a larger one is reported, not sent)
MAX_OUTPUT = 256 * 1024 * 1024
#: the job's wrapper (as the job's account, in its cgroups): opens its log, records its pid
#: (the session's id), runs the command (no exec: it waits for it) and records its exit status
_RUN_RECORDING_EXIT = ('exec >"$1/log" 2>&1 </dev/null; '
                       'echo $$ >"$1/pid.new" && mv -f "$1/pid.new" "$1/pid" || exit 126; S=$1; shift; '
                       '"$@"; rc=$?; echo "$rc" >"$S/exit.new" && mv -f "$S/exit.new" "$S/exit"; exit "$rc"')


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
    """Start ``spec.cmd`` in ``$S/work`` with ``files`` there; print ``@@pid <pid>``. The job
    gets a server's confinement (`launch_scripts.session_setup_lines`, `launch_scripts.start_lines`): its
    session directory handed to ``spec.account``, its cgroup with ``spec.limits``, its mounts
    made, its files written and its command run as the account. Exit statuses as the
    server's launch script (`scripts`). CONTAINS SECRETS."""
    prefix = f"{{\n{spec.prefix.rstrip()}\n}} >&2\n" if spec.prefix.strip() else ""
    link = f'ln -s "$S/data" {q(_file_name(data_name))}\n' if spec.mounts else ""
    command = " ".join(q(a) for a in spec.cmd)
    # the work directory and the job's files are made as the account: a symlink it planted
    # in its own directory gets it nothing root could write
    work = as_account_script(f'S={q(spec.session_dir)}\nmkdir -m 700 "$S/{WORK}" && cd "$S/{WORK}" && {{\n{link}{write_files(files)}}}')
    first, _, rest = work.partition("\n")
    body = f"""{session_setup_lines(spec, mark="kind=run")}{first} || {{ remove_session; exit {EXIT_ROOT}; }}
{rest}cd "$S/{WORK}" || {{ remove_session; exit {EXIT_ROOT}; }}
{export_lines({**spec.env, **job_env})}{prefix}{start_lines(spec, _RUN_RECORDING_EXIT, command, "log", "job")}"""
    return _wrap(body)


def batch_poll_script(session_dir: str, pid: int) -> str:
    """``@@running`` while the job's process lives, else ``@@ended <exit status or none>``
    (``none``: the session is gone or the job left no status); removes nothing. Its files
    are read as the session directory's owner (`confine.AS_ACCOUNT`)."""
    body = f"""{SH_FUNCS}S={q(session_dir)}
p={int(pid)}
cur=$(as_account cat "$S/pid" 2>/dev/null)
if [ "$cur" = "$p" ] && alive "$p"; then
  echo "@@running"
else
  rc=$(as_account cat "$S/exit" 2>/dev/null)
  case $rc in ''|*[!0-9]*) rc=none ;; esac
  echo "@@ended $rc"
fi
"""
    return _wrap(body)


def collect_script(session_dir: str, outputs: Sequence[str], log_tail: int) -> str:
    """Print each output that exists (``@@file <name>`` + base64 + ``@@end``; ``@@too-big
    <name> <bytes>`` over `MAX_OUTPUT`), ``@@exit <status or none>`` and ``@@log`` + the
    base64 of the log's last ``log_tail`` bytes + ``@@end`` — all read as the session
    directory's owner (`confine.AS_ACCOUNT`), symlinks refused: an output the job linked to
    a file only root may read is not brought back."""
    lines = [f"S={q(session_dir)}\n", f'W="$S/{WORK}"\n']
    for name in outputs:
        f = q(_file_name(name))
        lines.append(f'if [ -f "$W"/{f} ] && [ ! -L "$W"/{f} ] && [ -r "$W"/{f} ]; then\n'
                     f'  n=$(wc -c <"$W"/{f})\n'
                     f'  if [ "$n" -gt {MAX_OUTPUT} ]; then echo "@@too-big {name} $n"; else\n'
                     f'  echo "@@file {name}"; base64 <"$W"/{f}; echo "@@end"; fi\n'
                     "fi\n")
    lines.append('rc=$(cat "$S/exit" 2>/dev/null); case $rc in \'\'|*[!0-9]*) rc=none ;; esac; echo "@@exit $rc"\n')
    lines.append(f'echo "@@log"; [ -f "$S/log" ] && [ ! -L "$S/log" ] && tail -c {int(log_tail)} "$S/log" | base64; echo "@@end"\n')
    return _wrap(f"S={q(session_dir)}\n" + AS_ACCOUNT + as_account_script("".join(lines)))


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
    body = f"""{AS_ACCOUNT}S={q(session_dir)}
p={int(pid)}
[ "$(as_account cat "$S/pid" 2>/dev/null)" = "$p" ] || exit 0
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
# as the session's account: a pid file it wrote never makes root signal another's process
as_account kill -STOP $all 2>/dev/null
as_account kill -KILL $all 2>/dev/null
echo "@@killed$all"
"""
    return _wrap(body)
