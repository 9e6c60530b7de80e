"""python -m tests.slurmlab [--no-accounting] [--min-job-age S]

Starts the Slurm lab, prints how to reach it (ssh to the login node as the lab's account,
the Slurm commands as root), and keeps it up until Ctrl-C / SIGTERM; then tears it all down.
Needs root and scripts/install-slurm-test-deps.sh.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading

from . import SlurmLab

SMI_QUERY = "--query-gpu=index,uuid,name,memory.total,memory.used --format=csv,noheader,nounits"


def describe(lab: SlurmLab) -> str:
    ssh_login = shlex.join(lab.ssh_argv("login"))
    sinfo = shlex.quote("sinfo -N -o '%N %P %t %G %f'")  # one argument: ssh joins its arguments
    lines = [
        f"Slurm lab {lab.cluster} up in {lab.startup_seconds['total']} s ({lab.startup_seconds})",
        f"  temp dir     {lab.root}",
        f"  slurm.conf   {lab.conf}",
        f"  login node   {lab.login.address} (netns {lab.login.netns}): slurmctld, slurmdbd, munged, sshd",
    ]
    for name, host in lab.compute.items():
        lines.append(f"  compute node {name} {host.address} (netns {host.netns}, behind the login node): slurmd, sshd")
    lines += [
        f"  account      {lab.user} (home {lab.home()}"
        + ("; Slurm account research, QoS normal/short)" if lab.accounting else "; no accounting: no sacct, QoS, accounts)"),
        f"  Slurm        {lab.slurm_version}, devices constrained by cgroup: {lab.constrain_devices}",
        "",
        "Submit as the account, through the login node:",
        f"  {ssh_login} {sinfo}",
        f"  printf '#!/bin/sh\\nnvidia-smi {SMI_QUERY}; env | grep GPU\\n' | {ssh_login} sbatch --gres=gpu:t4:1",
        "A compute node (through the login node):",
        f"  {shlex.join(lab.ssh_argv(next(iter(lab.compute))))} nvidia-smi {SMI_QUERY}",
        "Slurm commands as root on the login node:",
        f"  SLURM_CONF={lab.conf} ip netns exec {lab.login.netns} squeue",
        "",
        "Ctrl-C stops the cluster and removes everything.",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.slurmlab", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--no-accounting", action="store_true", help="no MariaDB/slurmdbd (no sacct, QoS, accounts)")
    p.add_argument("--min-job-age", type=int, default=300, help="seconds finished jobs stay in squeue (MinJobAge)")
    args = p.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with SlurmLab(accounting=not args.no_accounting, min_job_age=args.min_job_age) as lab:
        print(describe(lab), flush=True)
        stop.wait()
        print("stopping the Slurm lab", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
