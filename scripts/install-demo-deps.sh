#!/usr/bin/env bash
# What `make demo` needs: .venv with gridspawner and JupyterLab at the versions
# locks/demo.txt pins (the part of locks/venv.txt they need: `make test` installs the rest
# into the same .venv), configurable-http-proxy in .node/ as locks/node/ pins.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ensure_venv .venv locks/demo.txt gridspawner jupyterlab
ensure_chp
