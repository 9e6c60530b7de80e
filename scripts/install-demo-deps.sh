#!/usr/bin/env bash
# What `make demo` needs: .venv with gridspawner installed, configurable-http-proxy in .node/.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

if [ -x "$ROOT/.venv/bin/python" ] && "$ROOT/.venv/bin/python" -c 'import gridspawner, jupyterhub, jupyterlab' 2>/dev/null; then
    :  # already there (e.g. made by `make test`, which installs a superset)
else
    ensure_venv .venv -e . jupyterlab
fi
ensure_chp
# the JupyterLab extension: time left and stop warnings in the demo's servers
"$ROOT/scripts/install-lab-extension.sh" .venv
