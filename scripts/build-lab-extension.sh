#!/usr/bin/env bash
# Build gridspawner-lab's JupyterLab extension (gridspawner-lab/js → gridspawner-lab/
# gridspawner_lab/labextension, which is committed: installing the package needs no Node).
#   scripts/build-lab-extension.sh          install the build tools, build; commit the result
#   scripts/build-lab-extension.sh --tools  only install the build tools (what `make test`
#                                           needs: a test rebuilds the extension and compares)
# The tools (@jupyter/builder, @jupyterlab/core-meta) go into gridspawner-lab/js/node_modules
# at exactly the versions gridspawner-lab/js/package-lock.json pins (`npm ci`); a stamp keyed
# on the lock skips npm when nothing changed. To move to newer tools: change package.json,
# run `npm install` in gridspawner-lab/js (it rewrites the lock), build, commit all three.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

JS="$ROOT/gridspawner-lab/js"
key="$(sha256sum "$JS/package-lock.json" | cut -c1-16)"
if [ ! -e "$JS/node_modules/.gridspawner-installed-$key" ]; then
    ensure_node
    say "npm: installing the lab extension's locked build tools into gridspawner-lab/js/node_modules"
    (cd "$JS" && npm ci --no-audit --no-fund --loglevel=error)
    touch "$JS/node_modules/.gridspawner-installed-$key"
fi
if [ "${1:-}" = "--tools" ]; then
    exit 0
fi
say "building the lab extension into gridspawner-lab/gridspawner_lab/labextension"
(cd "$JS" && npm run --silent build)
