#!/usr/bin/env bash
# What the Slurm lab needs (tests/slurmlab: a real one-cluster Slurm in network namespaces).
#   slurm-wlm        slurmctld + slurmd + the client commands (sbatch, squeue, sacct, ...)
#   slurmdbd         the accounting daemon (sacct, accounts, QoS)
#   mariadb-server   slurmdbd's database (the lab starts its own mariadbd by PID, in a temp dir)
#   munge            authentication between the Slurm daemons and commands
# plus what the SSH lab needs (scripts/install-ssh-test-deps.sh: sshd, iproute2, useradd).
# Idempotent: installs only what is missing. No service is started: policy-rc.d (or the lack
# of an init system) keeps apt from starting them, and the tests start every daemon
# themselves and stop it by its PID.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

"$ROOT/scripts/install-ssh-test-deps.sh"
ensure_apt slurm-wlm slurmdbd munge mariadb-server
say "slurm test dependencies ready"
