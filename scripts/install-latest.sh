#!/usr/bin/env bash
# The NEWEST releases of everything the suite needs, apart from the locked environments:
#   .venv-latest  : gridspawner + [test,docs], newest JupyterHub
#   .venv5-latest : gridspawner + [test], newest JupyterHub 5.x
#   .node-latest  : newest configurable-http-proxy
# Used by `make test-latest` (is the project ready for what a new install would get?) and
# `make lock` (which writes the locks from these). Debian packages, helm and the ssh/FUSE
# tools come from scripts/install-system-deps.sh, as for `make test`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

"$ROOT/scripts/install-system-deps.sh"
ensure_latest_venv .venv-latest -e ".[test,docs]"
ensure_latest_venv .venv5-latest "jupyterhub>=5.3,<6" -e ".[test]"
ensure_node
say "npm: installing the newest configurable-http-proxy and axe-core into .node-latest/"
mkdir -p "$ROOT/.node-latest"
npm install --prefix "$ROOT/.node-latest" --no-audit --no-fund --loglevel=error --save-exact configurable-http-proxy@latest axe-core@latest
