#!/usr/bin/env bash
# Everything `make test` needs, on a bare Debian 12 machine or a prepared one.
# Idempotent: each step checks first and is skipped when already done.
#   - system packages, helm, sshd and FUSE tools (scripts/install-system-deps.sh)
#   - .venv : gridspawner + [test,docs] with JupyterHub 6.x, exactly as locks/venv.txt pins
#   - .venv5: gridspawner + [test] with JupyterHub 5.x, exactly as locks/venv5.txt pins
#     (hub tests run on both)
#   - configurable-http-proxy and axe-core in .node/, as locks/node/package-lock.json pins
# Playwright's Python package comes with [test]; it drives /usr/bin/chromium, so no
# browser download is needed. The locks make a fresh clone install what CI ran; `make lock`
# refreshes them, `make test-latest` tries the newest releases without them.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

"$ROOT/scripts/install-system-deps.sh"
ensure_venv .venv locks/venv.txt "gridspawner[test,docs]"
ensure_venv .venv5 locks/venv5.txt "gridspawner[test]" "jupyterhub>=5.3,<6"
ensure_chp
# gridspawner-lab (the JupyterLab extension): its locked build tools for the test that
# rebuilds it, and the package in both environments the test hubs' servers run from
"$ROOT/scripts/build-lab-extension.sh" --tools
"$ROOT/scripts/install-lab-extension.sh" .venv .venv5
say "test dependencies ready"
