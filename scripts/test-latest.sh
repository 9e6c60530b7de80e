#!/usr/bin/env bash
# `make test-latest`: the whole suite and the docs build on the NEWEST releases of every
# Python and npm dependency (scripts/install-latest.sh), not on the locks. Not part of CI:
# run it before `make lock`, or to see early what a dependency's new release breaks.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

"$ROOT/scripts/install-latest.sh"
VENV=.venv-latest VENV5=.venv5-latest NODE_DIR=.node-latest "$ROOT/scripts/run-tests.sh" "$@"
say "docs with the newest Sphinx"
"$ROOT/.venv-latest/bin/sphinx-build" -W --keep-going -q -b html "$ROOT/docs" "$ROOT/docs/_build/html-latest"
