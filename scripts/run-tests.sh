#!/usr/bin/env bash
# The test suite as `make test` runs it (after scripts/install-test-deps.sh):
#   1. every test on .venv (JupyterHub 6.x)
#   2. a selection of the hub-level tests (-m jh5) again on .venv5 (JupyterHub 5.x): those that
#      cover what differs between JupyterHub 5 and 6 (spawn/stop/restart, REST options, the form,
#      progress, apply_user_options, named servers, the service's OAuth, one per backend kind);
#      tests/unit/test_ci_selection.py keeps the selection non-empty and this script using it
# pytest's exit status 5 ("no tests collected") counts as a failure: a suite that silently
# collects nothing must not pass CI. Extra arguments go to both pytest runs.
# VENV, VENV5 and NODE_DIR choose other environments (`make test-latest` uses
# .venv-latest, .venv5-latest and .node-latest).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
VENV="${VENV:-.venv}"
VENV5="${VENV5:-.venv5}"
NODE_DIR="${NODE_DIR:-.node}"
export GRIDSPAWNER_NODE_BIN="$ROOT/$NODE_DIR/node_modules/.bin"
export PATH="$GRIDSPAWNER_NODE_BIN:$PATH"

run_pytest() {
    local venv="$1"; shift
    say "pytest on $venv ($("$ROOT/$venv/bin/python" -c 'import jupyterhub; print("JupyterHub", jupyterhub.__version__)')): $*"
    local rc=0
    PATH="$ROOT/$venv/bin:$PATH" "$ROOT/$venv/bin/python" -m pytest "$@" || rc=$?
    if [ "$rc" -eq 5 ]; then
        say "FAILED: pytest collected no tests on $venv ($*)"
        exit 5
    elif [ "$rc" -ne 0 ]; then
        say "FAILED: pytest on $venv exited $rc"
        exit "$rc"
    fi
}

run_pytest "$VENV" "$@"
run_pytest "$VENV5" -m jh5 "$@"
