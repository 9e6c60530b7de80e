"""Pure builders of what the Slurm backend sends (sbatch options, the job script, the sh
scripts run on the login and compute nodes) and parsers of what Slurm prints. No I/O.

Every value is ``shlex.quote``d; the only unquoted text is the admin's image ``prefix``
(trusted shell, like on SSH hosts). The batch script holds **no secret**: Slurm keeps batch
scripts in its state directory and shows them to the job's owner (``scontrol write
batch_script``). The API token reaches the server another way: once the job runs, the hub
writes the environment into a 0600 file in the job's 0700 session directory on the compute
node over SSH (`deliver_env_script`, on stdin, never in an argv); the job reads and deletes
it before it starts the server.
"""

from __future__ import annotations

import math
import re
import secrets
import shlex
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ...gpu import NVIDIA_SMI_ARGS
from ..host.scripts import SOCKET_NAME, check_slug, export_lines, sh_path
from .settings import GPUType, SlurmSettings

q = shlex.quote

#: pending reasons after which a job can never start as asked: the launch fails at once with
#: Slurm's reason (and the job is cancelled) instead of waiting for ``queue_wait``
NEVER_RUNS = frozenset({
    "BadConstraints", "PartitionNodeLimit", "PartitionTimeLimit", "PartitionConfig", "InvalidAccount",
    "InvalidQOS", "QOSMaxWallDurationPerJobLimit", "AssocMaxWallDurationPerJobLimit", "QOSMaxGRESPerJob",
    "QOSMaxCpuPerJobLimit", "QOSMaxMemoryPerJob", "AssocMaxGRESPerJob", "AssocMaxCpuPerJobLimit",
    "QOSMaxNodePerJobLimit", "DependencyNeverSatisfied",
})
#: what each state of a job that ended means, for users and admins
ENDED = {
    "TIMEOUT": "reached its time limit",
    "PREEMPTED": "was preempted",
    "NODE_FAIL": "ended because its node failed",
    "BOOT_FAIL": "could not boot its node",
    "CANCELLED": "was cancelled",
    "COMPLETED": "ended (the server exited)",
    "FAILED": "failed",
    "OUT_OF_MEMORY": "ran out of memory",
    "DEADLINE": "reached its deadline",
    "REVOKED": "was revoked",
    "SPECIAL_EXIT": "ended with a special exit",
}
#: states in which the job (and so the server) may still run
ACTIVE = frozenset({"RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "STOPPED", "RESIZING", "SIGNALING", "STAGE_OUT"})
#: the squeue format the board reads: id, state, reason, nodes, (estimated) start time
SQUEUE_FORMAT = "%i|%T|%r|%N|%S"
SACCT_FIELDS = "JobIDRaw,State,Reason,NodeList,ExitCode"


class RequestProblem(ValueError):
    """The request cannot be expressed for this cluster (message for the user)."""


# --------------------------------------------------------------------------- sbatch options
def gpu_choice(settings: SlurmSettings, gpu_type: str | None, gpu_memory: int) -> tuple[GPUType | None, tuple[str, ...]]:
    """The GPU type to ask Slurm for and the node features (any of) that satisfy a minimum
    VRAM: the user's type; else, for ``gpu_memory`` GB, every declared type at least that
    large — none named when all declared types are, one type when one is, the features of
    all when each has one (``--constraint=a|b``), else the smallest (best fit)."""
    if gpu_type:
        try:
            t = settings.gpu_type(gpu_type)
        except KeyError:
            raise RequestProblem(f"unknown GPU type {gpu_type!r}") from None
        if gpu_memory and t.memory and t.memory < gpu_memory:
            raise RequestProblem(f"GPU type {gpu_type!r} has {t.memory} GB, less than the {gpu_memory} GB asked for")
        return t, ()
    if not gpu_memory:
        return None, ()
    if not settings.gpu_types:
        raise RequestProblem("this cluster declares no GPU types, so a minimum GPU memory cannot be honoured; "
                             "set gpu_memory to 0")
    fitting = sorted((t for t in settings.gpu_types if t.memory >= gpu_memory), key=lambda t: (t.memory, t.key))
    if not fitting:
        biggest = max(t.memory for t in settings.gpu_types)
        raise RequestProblem(f"no GPU type of this cluster has {gpu_memory} GB (the largest has {biggest} GB)")
    if len(fitting) == len(settings.gpu_types):
        return None, ()
    if len(fitting) == 1:
        return fitting[0], ()
    if all(t.feature for t in fitting):
        return None, tuple(t.feature for t in fitting)
    return fitting[0], ()


def time_minutes(seconds: float) -> int:
    """Slurm time limits are whole minutes: rounded up, at least 1."""
    return max(1, math.ceil(seconds / 60))


def sbatch_options(settings: SlurmSettings, request: Any, slug: str) -> list[str]:
    """sbatch's options for ``request`` (a LaunchRequest): job name, output, partition / QoS /
    account of the request's profile, GPUs, CPUs, memory, time limit, the admin's extras."""
    place = settings.placement_for(getattr(request, "profile", None))
    # never requeued: after a node failure or a preemption the server is gone either way, and
    # a requeued job would start a server the hub no longer routes to (the hub reports the end)
    opts = ["--parsable", f"--job-name={settings.job_name}-{check_slug(slug)}", f"--output={settings.job_output}",
            "--no-requeue"]
    if place.partition:
        opts.append(f"--partition={place.partition}")
    if place.qos:
        opts.append(f"--qos={place.qos}")
    if place.account:
        opts.append(f"--account={place.account}")
    gpus = int(getattr(request, "gpus", 0) or 0)
    if gpus > 0:
        gtype, features = gpu_choice(settings, getattr(request, "gpu_type", None), int(getattr(request, "gpu_memory", 0) or 0))
        kind = gtype.gres if gtype else None
        if settings.gpu_option == "gpus":
            opts.append(f"--gpus={kind}:{gpus}" if kind else f"--gpus={gpus}")
        else:
            opts.append(f"--gres=gpu:{kind}:{gpus}" if kind else f"--gres=gpu:{gpus}")
        if features:
            opts.append(f"--constraint={'|'.join(features)}")
    cpu = getattr(request, "cpu", None)
    if cpu:
        opts.append(f"--cpus-per-task={max(1, math.ceil(cpu))}")
    memory = getattr(request, "memory", None)
    if memory:
        opts.append(f"--mem={int(memory)}G")
    limit = getattr(request, "max_runtime", None) or settings.time_limit
    if limit:
        opts.append(f"--time={time_minutes(limit)}")
    opts.extend(settings.extra_options)
    return opts


# --------------------------------------------------------------------------- scripts
def session_dir(session_root: str, slug: str, job_id: int | str) -> str:
    """The job's session directory on the compute node (its socket, its env file)."""
    return f"{session_root.rstrip('/')}/{check_slug(slug)}.{int(job_id)}"


def job_script(settings: SlurmSettings, *, session_root: str, slug: str, cmd: Sequence[str], prefix: str,
               notebook_dir: str) -> str:
    """The batch script: make the 0700 session directory ``<root>/<slug>.$SLURM_JOB_ID``
    with the job's GPUs (``gpus.csv``, from nvidia-smi as the job sees them), wait up to
    ``env_wait`` for the hub to deliver the environment, start the server on a unix socket
    there, forward scancel's TERM to it, and remove the directory when it ends. No secret."""
    ticks = max(1, math.ceil(settings.env_wait * 10))
    smi = " ".join(q(w) for w in (*settings.nvidia_smi, *NVIDIA_SMI_ARGS))
    server = " ".join(q(a) for a in cmd)
    pre = f"{{\n{prefix.rstrip()}\n}} >&2\n" if prefix.strip() else ""
    return f"""#!/bin/sh
# gridspawner: a Jupyter server for JupyterHub (the hub delivers its environment over SSH)
umask 077
R={q(session_root)}
S="$R"/{q(check_slug(slug))}."$SLURM_JOB_ID"
mkdir -p "$R" 2>/dev/null
if [ -L "$R" ] || [ ! -d "$R" ] || [ ! -O "$R" ]; then
  echo "gridspawner: session root $R on $(hostname) is not a directory owned by $(id -un)" >&2
  exit 10
fi
chmod 700 "$R" || exit 10
rm -rf "$S.new" "$S"
mkdir -m 700 "$S.new" || exit 10
{smi} >"$S.new/gpus.csv" 2>/dev/null || : >"$S.new/gpus.csv"
mv "$S.new" "$S" || exit 10
n={ticks}
while [ ! -f "$S/env" ] && [ "$n" -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
if [ ! -f "$S/env" ]; then
  echo "gridspawner: the hub did not deliver the server's environment within {settings.env_wait:g} s" >&2
  rm -rf "$S"
  exit 1
fi
. "$S/env"
rm -f "$S/env"
N={sh_path(notebook_dir)}
mkdir -p "$N" && cd "$N" || {{ echo "gridspawner: cannot use notebook directory $N" >&2; rm -rf "$S"; exit 12; }}
{pre}if [ "$(id -u)" = 0 ]; then set -- --allow-root; else set --; fi
{server} "$@" --ServerApp.sock="$S/{SOCKET_NAME}" --ServerApp.sock_mode=0600 >"$S/server.log" 2>&1 </dev/null &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM INT HUP
while :; do
  wait "$pid"; status=$?
  kill -0 "$pid" 2>/dev/null || break
done
# Slurm signals every process of the job again while it ends: the clean-up ignores TERM
# (ignored signals are inherited), so rm is not cut short; KillWait then bounds it
trap '' TERM INT HUP
echo "gridspawner: the server exited with status $status; the end of its log:" >&2
tail -n 30 "$S/server.log" >&2 2>/dev/null
rm -rf "$S"
exit "$status"
"""


def submit_script(options: Sequence[str], job: str, job_output: str) -> str:
    """Run on the login node: ``sbatch OPTIONS`` with the batch script on its stdin (a
    here-document with an unguessable delimiter), after making the output file's directory
    (0700). Prints the job id (``--parsable``)."""
    delimiter = f"GRIDSPAWNER_JOB_{secrets.token_hex(8)}"
    if delimiter in job:  # cannot happen by chance; a script is never cut short
        raise ValueError("job script contains the here-document delimiter")
    out_dir = job_output.rpartition("/")[0]
    mkdir = f"mkdir -p -m 700 {q(out_dir)} 2>/dev/null\n" if out_dir and "%" not in out_dir else ""
    return f"{mkdir}sbatch {shlex.join(options)} <<'{delimiter}'\n{job.rstrip()}\n{delimiter}\n"


def wait_dir_script(sdir: str, timeout: float) -> str:
    """Run on the compute node: wait for the job's session directory; print ``@@gpus`` and
    the job's GPUs (nvidia-smi CSV), or ``@@nodir`` (exit 3)."""
    ticks = max(1, math.ceil(timeout * 10))
    return (f"S={q(sdir)}\nn={ticks}\n"
            'while [ ! -d "$S" ] && [ "$n" -gt 0 ]; do sleep 0.1; n=$((n - 1)); done\n'
            'if [ -L "$S" ] || [ ! -d "$S" ] || [ ! -O "$S" ]; then echo @@nodir; exit 3; fi\n'
            'echo @@gpus; cat "$S/gpus.csv" 2>/dev/null; echo @@end\n')


def deliver_env_script(sdir: str, env: Mapping[str, str]) -> str:
    """Run on the compute node (on stdin: CONTAINS SECRETS, never log it): write ``env`` as
    ``export`` lines into ``$S/env`` (0600, renamed into place whole) for the job to read."""
    text = export_lines(env)
    return (f"umask 077\nS={q(sdir)}\n"
            'if [ -L "$S" ] || [ ! -d "$S" ] || [ ! -O "$S" ]; then echo @@nodir; exit 3; fi\n'
            f'printf %s {q(text)} >"$S/env.new" && mv -f "$S/env.new" "$S/env" && echo @@delivered\n')


def wait_ready_script(sdir: str, timeout: float) -> str:
    """Run on the compute node: wait for the server's socket; ``@@ready``, ``@@gone`` (the
    job removed its directory: the server exited) or ``@@starting`` (still not listening)."""
    ticks = max(1, math.ceil(timeout * 10))
    return (f"S={q(sdir)}\nn={ticks}\n"
            f'while [ "$n" -gt 0 ]; do\n'
            f'  if [ -S "$S/{SOCKET_NAME}" ]; then echo @@ready; exit 0; fi\n'
            '  if [ ! -d "$S" ]; then echo @@gone; exit 0; fi\n'
            '  sleep 0.1; n=$((n - 1))\ndone\necho @@starting\n')


def squeue_command(job_ids: Sequence[int]) -> str:
    """One squeue for every job the board tracks (finished ones too: ``-t all``)."""
    return shlex.join(["squeue", "-h", "-t", "all", "-j", ",".join(str(int(j)) for j in job_ids), "-o", SQUEUE_FORMAT])


def sacct_command(job_ids: Sequence[int]) -> str:
    return shlex.join(["sacct", "-n", "-P", "-X", "-j", ",".join(str(int(j)) for j in job_ids), "-o", SACCT_FIELDS])


def scancel_command(job_id: int) -> str:
    return shlex.join(["scancel", str(int(job_id))])


def tail_command(path: str, lines: int) -> str:
    """The last lines of a job's output file (relative: to the account's home)."""
    return shlex.join(["tail", "-n", str(int(lines)), "--", path])


def node_address_command(node: str) -> str:
    return shlex.join(["sinfo", "-h", "-N", "-n", node, "-o", "%N|%o"])


#: sinfo's view of every node in every partition: GPUs declared and in use, state, features
SINFO_CAPACITY = shlex.join(["sinfo", "-h", "-N", "-O", "NodeList:|,Partition:|,StateCompact:|,Gres:|,GresUsed:|"])


# --------------------------------------------------------------------------- parsers
@dataclass(frozen=True)
class JobInfo:
    """A job as squeue (or sacct, once squeue forgot it) reports it."""

    job_id: int
    state: str
    reason: str = ""
    nodes: str = ""
    start: str = ""  # StartTime: for a pending job the scheduler's estimate ("N/A" when none)
    exit_code: str = ""

    @property
    def running(self) -> bool:
        return self.state in ACTIVE and self.state not in ("COMPLETING", "CONFIGURING")

    @property
    def pending(self) -> bool:
        """Not started yet: queued, or allocated while its node boots (CONFIGURING)."""
        return self.state in ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING")

    @property
    def ended(self) -> bool:
        return not self.running and not self.pending

    def pending_text(self) -> str:
        """"pending: Resources (estimated start 2026-12-07T10:00:00)"."""
        start = f" (estimated start {self.start})" if re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:]+", self.start or "") else ""
        if self.state == "CONFIGURING":
            return "allocated, its node is starting (CONFIGURING)"
        reason = self.reason if self.reason and self.reason != "None" else "waiting for the scheduler"
        return f"pending: {reason}{start}"

    def ended_text(self) -> str:
        """"TIMEOUT: reached its time limit (TimeLimit)"."""
        what = ENDED.get(self.state.split()[0], "ended")
        reason = f" ({self.reason})" if self.reason and self.reason not in ("None", "") else ""
        return f"{self.state}: {what}{reason}"


def _state(raw: str) -> str:
    # sacct: "CANCELLED by 1001"; squeue: plain words
    return raw.split()[0] if raw.strip() else "UNKNOWN"


def parse_squeue(text: str) -> dict[int, JobInfo]:
    out = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 5 or not parts[0].isdigit():
            continue
        out[int(parts[0])] = JobInfo(int(parts[0]), _state(parts[1]), parts[2], parts[3], parts[4])
    return out


def parse_sacct(text: str) -> dict[int, JobInfo]:
    out = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 5 or not parts[0].isdigit():
            continue
        out[int(parts[0])] = JobInfo(int(parts[0]), _state(parts[1]), parts[2], parts[3], exit_code=parts[4])
    return out


def parse_job_id(stdout: str) -> int:
    """sbatch --parsable prints "ID" or "ID;CLUSTER"."""
    first = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    m = re.fullmatch(r"(\d+)(;\S+)?", first.strip())
    if not m:
        raise ValueError(f"sbatch printed no job id: {stdout.strip()[:200]!r}")
    return int(m.group(1))


def parse_node_address(text: str, node: str) -> str | None:
    for line in text.splitlines():
        name, _, addr = line.strip().partition("|")
        if name == node and re.fullmatch(r"[A-Za-z0-9_.:-]{1,253}", addr) and not addr.startswith("-"):
            return addr
    return None


def marker_text(stdout: str, marker: str) -> str | None:
    """What follows ``@@marker`` up to ``@@end`` (or the end), None when absent."""
    if f"@@{marker}" not in stdout:
        return None
    return stdout.split(f"@@{marker}", 1)[1].split("@@end", 1)[0].strip("\n")


_GRES = re.compile(r"gpu:(?:([A-Za-z0-9_.+-]+):)?(\d+)")


def parse_gres(text: str) -> dict[str, int]:
    """``gpu:a100:2(S:0-1),gpu:t4:1`` → {"a100": 2, "t4": 1} (untyped: key "")."""
    out: dict[str, int] = {}
    for m in _GRES.finditer(text or ""):
        out[m.group(1) or ""] = out.get(m.group(1) or "", 0) + int(m.group(2))
    return out


@dataclass(frozen=True)
class NodeGPUs:
    """One node's GPUs per gres type: declared and in use; its partitions and state."""

    node: str
    partitions: tuple[str, ...]
    state: str
    total: Mapping[str, int]
    used: Mapping[str, int]

    @property
    def usable(self) -> bool:
        """Jobs may start there now (not down, drained, failing or reserved for maintenance)."""
        return not re.search(r"down|drain|fail|maint|unk|boot|futur|inval|powered", self.state)

    def free(self, gres_type: str) -> int:
        return max(0, self.total.get(gres_type, 0) - self.used.get(gres_type, 0)) if self.usable else 0


def parse_sinfo_capacity(text: str) -> list[NodeGPUs]:
    """`SINFO_CAPACITY`'s rows (one per node and partition) merged per node."""
    nodes: dict[str, dict] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 5 or not parts[0]:
            continue
        node, partition, state, gres, used = parts[:5]
        n = nodes.setdefault(node, {"partitions": [], "state": state, "total": parse_gres(gres), "used": parse_gres(used)})
        if partition and partition not in n["partitions"]:
            n["partitions"].append(partition)
    # sinfo lists a node's partitions in no fixed order: the default one ("gpu*") first, then by name
    def ordered(parts: list[str]) -> tuple[str, ...]:
        return tuple(p.rstrip("*") for p in sorted(parts, key=lambda p: (not p.endswith("*"), p)))

    return [NodeGPUs(node, ordered(v["partitions"]), v["state"], v["total"], v["used"]) for node, v in nodes.items()]
