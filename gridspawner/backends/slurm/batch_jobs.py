"""PURE: what the Slurm backend sends for a batch job (a notebook run), and how it reads
Slurm's answers about it. No I/O.

A run lives in a **run directory** ``<run_dir>/<slug>.<nonce>`` on the filesystem the login
node and the compute nodes share (the account's home, like the jobs' ``--output``): one
command on the login node makes it (0700), writes the job's files into ``work/`` and its
environment into ``env`` (0600; base64 here-documents on the command's stdin, never an
argv), then ``sbatch``es the job. The batch script Slurm stores holds paths and papermill's
argv only — no parameter, no notebook, no environment value. The job records its GPUs
(``gpus.csv``), runs the command in ``work/`` with its output going to ``log`` (sbatch
``--output``) and records its exit status in ``exit``. The layout inside is the host batch
jobs' (``work/``, ``log``, ``exit``), so their collect script (`host.batch_scripts`) reads
it back over the same login-node connection; then the directory is removed.

Why not the node-local session directory servers use: a job's node may refuse SSH once the
job ended (``pam_slurm_adopt``) or run someone else's job by then; the login node can
always read the shared home.
"""

from __future__ import annotations

import math
import re
import shlex
from typing import Mapping, Sequence

from ...gpu import NVIDIA_SMI_ARGS
from ..host.batch_scripts import WORK, write_files
from ..host.scripts import check_slug, export_lines
from .jobs import JobInfo, submit_script
from .settings import SlurmSettings

q = shlex.quote

#: the exit status a job reports when Slurm ended it with a signal and no status is known
EXIT_UNKNOWN = -1


def run_dir(root: str, slug: str, nonce: str) -> str:
    """``<root>/<slug>.<nonce>``: a fresh directory per start (a retried run never shares one
    with a job of an earlier try that may still run)."""
    if not re.fullmatch(r"[0-9a-f]{4,32}", nonce):
        raise ValueError(f"unsafe nonce {nonce!r}")
    return f"{root.rstrip('/')}/{check_slug(slug)}.{nonce}"


def batch_options(server_options: Sequence[str], rdir: str) -> list[str]:
    """A server's sbatch options (`jobs.sbatch_options`) for a batch job: its ``--output``
    is the run directory's ``log`` (the log tail users read)."""
    return [o if not o.startswith("--output=") else f"--output={rdir}/log" for o in server_options]


def job_script(settings: SlurmSettings, rdir: str, argv: Sequence[str], prefix: str) -> str:
    """The batch script: check the run directory is the account's own, record the job's GPUs,
    read ``env``, run the admin's ``prefix`` (module loads, a conda activation) and ``argv`` in
    ``work/``, record its exit status. No secret: paths and ``argv`` only."""
    smi = " ".join(q(w) for w in (*settings.nvidia_smi, *NVIDIA_SMI_ARGS))
    command = " ".join(q(a) for a in argv)
    pre = f"{{\n{prefix.rstrip()}\n}} >&2\n" if prefix.strip() else ""
    return f"""#!/bin/sh
# gridspawner: a notebook run (its files and environment are in its 0700 run directory)
umask 077
W={q(rdir)}
if [ -L "$W" ] || [ ! -d "$W/{WORK}" ] || [ ! -O "$W" ]; then
  echo "gridspawner: the run directory $W is missing or not $(id -un)'s own" >&2
  exit 10
fi
W=$(cd "$W" && pwd -P) || exit 10
{smi} >"$W/gpus.csv.new" 2>/dev/null || : >"$W/gpus.csv.new"
mv -f "$W/gpus.csv.new" "$W/gpus.csv"
. "$W/env" || exit 10
cd "$W/{WORK}" || exit 10
{pre}{command} </dev/null
rc=$?
echo "$rc" >"$W/exit.new" && mv -f "$W/exit.new" "$W/exit"
exit "$rc"
"""


def submit_batch_script(options: Sequence[str], job: str, rdir: str, files: Mapping[str, bytes],
                        env: Mapping[str, str]) -> str:
    """Run on the login node as the account (on stdin: the job's files, never an argv): remove
    the run directories of earlier tries of the same run (``<slug>.*``), make ``rdir`` (0700)
    with ``work/`` holding ``files`` and ``env`` (0600), then ``sbatch`` (prints the job id).
    When anything fails the directory is removed again and the status is not 0.
    ValueError for an unsafe file or variable name."""
    text = export_lines(env)
    if "\nGS_ENV_END\n" in f"\n{text}\n":
        raise ValueError("an environment value contains the here-document delimiter")
    parent, _, name = rdir.rpartition("/")
    slug = name.rpartition(".")[0]
    lines = [
        "umask 077\n",
        f"W={q(rdir)}\n",
        f"mkdir -p -m 700 {q(parent)} 2>/dev/null\n" if parent else "",
        f"rm -rf -- {q(parent + '/' if parent else '')}{q(slug)}.* 2>/dev/null\n",
        'mkdir -m 700 "$W" && mkdir -m 700 "$W/work" || { echo "gridspawner: cannot make the run directory $W" >&2; exit 10; }\n',
        'cd "$W/work" && {\n', write_files(files), "} || { cd; rm -rf -- \"$W\"; exit 10; }\ncd\n",
        f"cat >\"$W/env\" <<'GS_ENV_END'\n{text}GS_ENV_END\n",
    ]
    submit = submit_script(options, job, f"{rdir}/log")
    return "".join(lines) + "(\n" + submit + ') || { rc=$?; rm -rf -- "$W"; exit "$rc"; }\n'


def gpus_script(rdir: str, timeout: float) -> str:
    """Run on the login node: wait up to ``timeout`` for the job's ``gpus.csv`` (the shared
    filesystem may show it late); print ``@@gpus``, the CSV and ``@@end`` (``@@nogpus`` when
    it never came)."""
    ticks = max(0, math.ceil(timeout * 10))
    return (f"W={q(rdir)}\nn={ticks}\n"
            'while [ ! -f "$W/gpus.csv" ] && [ "$n" -gt 0 ]; do sleep 0.1; n=$((n - 1)); done\n'
            'if [ -f "$W/gpus.csv" ]; then echo @@gpus; cat "$W/gpus.csv"; echo @@end; else echo @@nogpus; fi\n')


def remove_script(rdir: str) -> str:
    """Run on the login node: remove the run directory (what the job wrote was collected)."""
    return f"rm -rf -- {q(rdir)}\n"


def still_running(info: JobInfo | None) -> bool:
    """Whether a batch job has not ended yet for the run: pending, running, or COMPLETING
    (its processes are still being ended: its files may still change)."""
    return info is not None and (info.running or info.pending or info.state == "COMPLETING")


def exit_code(info: JobInfo | None) -> int:
    """The exit code of an ended job as Slurm tells it: sacct's ``ExitCode`` (``N:SIGNAL``;
    a signal reads 128 + SIGNAL), else 0 for COMPLETED and 1 for every other end;
    `EXIT_UNKNOWN` when Slurm no longer knows the job."""
    if info is None:
        return EXIT_UNKNOWN
    m = re.fullmatch(r"(\d+):(\d+)", (info.exit_code or "").strip())
    if m:
        code, signal = int(m.group(1)), int(m.group(2))
        return 128 + signal if signal else code
    return 0 if info.state == "COMPLETED" else 1


def ended_note(job_id: int, info_text: str) -> str:
    """The line added to a run's log when Slurm ended its job by itself (time limit, node
    failure, preemption): "[gridspawner: Slurm job 12 TIMEOUT: reached its time limit]"."""
    return f"\n[gridspawner: Slurm job {int(job_id)} {info_text}]\n"


__all__ = ["batch_options", "ended_note", "exit_code", "gpus_script", "job_script", "remove_script", "run_dir",
           "still_running", "submit_batch_script"]
