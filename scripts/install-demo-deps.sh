#!/usr/bin/env bash
# What `make demo` needs: .venv with gridspawner and JupyterLab at the versions
# locks/demo.txt pins (the part of locks/venv.txt they need), configurable-http-proxy in
# .node/ as locks/node/ pins. A .venv that `make test` installed from the current
# locks/venv.txt holds all of that already and is used as it is.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

if ! venv_ready .venv locks/venv.txt "gridspawner[test,docs]"; then
    ensure_venv .venv locks/demo.txt gridspawner jupyterlab
fi
ensure_chp
# the JupyterLab extension: time left and stop warnings in the demo's servers
"$ROOT/scripts/install-lab-extension.sh" .venv
