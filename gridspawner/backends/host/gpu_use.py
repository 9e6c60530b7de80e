"""GPU use on a host, read with the capacity probe (the same SSH command, no extra
connection): each GPU's utilisation and the processes that use it, each with its chain of
parent processes, so the hub can tell which server a process belongs to (a kernel is a child
of its server even where it runs in a session of its own, as jupyter_client starts them).

`use_lines` is a pure builder of sh appended to `probe_scripts.probe_script`'s output;
`parse_use` reads it back. Used by the idle policy (`gridspawner.usage.idle`).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

q = shlex.quote

UTIL_ARGS = ("--query-gpu=uuid,utilization.gpu", "--format=csv,noheader,nounits")
APPS_ARGS = ("--query-compute-apps=gpu_uuid,pid,used_memory", "--format=csv,noheader,nounits")
#: parents followed up from a GPU process (a server's kernels are 1-3 levels below it)
MAX_DEPTH = 16


@dataclass(frozen=True)
class GpuProcess:
    uuid: str
    pid: int
    used_mib: int
    #: the process itself, then its parent, grand-parent… (up to `MAX_DEPTH`)
    lineage: tuple[int, ...] = ()


@dataclass(frozen=True)
class GpuUse:
    """What a probe saw: utilisation (%) per GPU uuid and the processes on the GPUs.
    ``ok`` False: nvidia-smi could not tell (no use is known)."""

    ok: bool
    at: float
    utilization: Mapping[str, int] = field(default_factory=dict)
    processes: tuple[GpuProcess, ...] = ()

    def busy(self, uuids: Iterable[str], server_pid: int, threshold: int) -> bool | None:
        """Whether a server (``server_pid``, its GPUs ``uuids``) uses its GPUs: one of them
        at ``threshold`` % or more with a process of the server (or one of its children) on
        it. None: not known (the probe could not read GPU use)."""
        if not self.ok:
            return None
        mine = set(uuids)
        for p in self.processes:
            if p.uuid in mine and server_pid in p.lineage and self.utilization.get(p.uuid, 0) >= threshold:
                return True
        return False


def use_lines(nvidia_smi: Sequence[str]) -> str:
    """sh that prints ``@@gpu-use <status>``, then ``@@util UUID, PERCENT`` lines and
    ``@@app UUID, PID, MIB, PID PPID GRANDPARENT…`` lines."""
    util = " ".join(q(a) for a in (*nvidia_smi, *UTIL_ARGS))
    apps = " ".join(q(a) for a in (*nvidia_smi, *APPS_ARGS))
    return f"""{{
if command -v {q(nvidia_smi[0])} >/dev/null 2>&1 && u=$({util} 2>/dev/null) && a=$({apps} 2>/dev/null); then
  echo "@@gpu-use 0"
  printf '%s\\n' "$u" | sed -n 's/^/@@util /p'
  printf '%s\\n' "$a" | while IFS=, read -r uuid pid mib; do
    pid=$(echo $pid); [ -n "$pid" ] || continue
    chain=$pid; p=$pid; n=0
    while [ "$n" -lt {MAX_DEPTH} ] && [ -r "/proc/$p/stat" ]; do
      # field 4 of /proc/PID/stat is the parent (after the command in parentheses)
      p=$(sed 's/.*) [A-Za-z] \\([0-9]*\\).*/\\1/' "/proc/$p/stat" 2>/dev/null)
      case "$p" in ''|0|1) break;; esac
      chain="$chain $p"; n=$((n + 1))
    done
    echo "@@app $(echo $uuid), $pid, $(echo $mib), $chain"
  done
else
  echo "@@gpu-use 1"
fi
}} </dev/null
"""


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def parse_use(stdout: str, now: float) -> GpuUse:
    """Read `use_lines`' output (other lines are ignored)."""
    ok = False
    util: dict[str, int] = {}
    procs: list[GpuProcess] = []
    for line in stdout.splitlines():
        if line.startswith("@@gpu-use "):
            ok = line.split()[1] == "0"
        elif line.startswith("@@util "):
            parts = [x.strip() for x in line[len("@@util "):].split(",")]
            if len(parts) == 2 and _int(parts[1]) is not None:
                util[parts[0]] = _int(parts[1])
        elif line.startswith("@@app "):
            parts = [x.strip() for x in line[len("@@app "):].split(",")]
            if len(parts) != 4:
                continue
            pid, mib = _int(parts[1]), _int(parts[2])
            lineage = tuple(int(x) for x in parts[3].split() if x.isdigit())
            if pid is not None:
                procs.append(GpuProcess(parts[0], pid, mib or 0, lineage or (pid,)))
    return GpuUse(ok, now, util, tuple(procs))
