#!/usr/bin/env bash
# scripts/install-lab-extension.sh VENV... : gridspawner-lab (gridspawner-lab/: the JupyterLab
# extension and its server extension) installed editable into each environment, e.g. .venv
# .venv5 — the single-user servers of `make demo` and of the test hubs run from them, so
# JupyterLab there shows the time left and the stop warnings. The built lab extension is
# copied into VENV/share/jupyter/labextensions at install (hatchling's editable install), so
# a stamp keyed on the package's files installs again after a rebuild.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

LAB="$ROOT/gridspawner-lab"
# the checkout's path is part of the key: an editable install points into one checkout
key="$( (echo "$LAB"; cat "$ROOT/locks/build.txt"; cd "$LAB" && find pyproject.toml install.json jupyter-config gridspawner_lab/labextension -type f \
       -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16)"
for name in "$@"; do
    venv="$ROOT/$name"
    if [ ! -x "$venv/bin/python" ]; then
        say "no environment $name: skipping gridspawner-lab there"
        continue
    fi
    if [ -e "$venv/.gridspawner-lab-installed-$key" ] && "$venv/bin/python" -c 'import gridspawner_lab' 2>/dev/null; then
        continue
    fi
    say "pip: installing gridspawner-lab (editable) into $name"
    "$venv/bin/python" -m pip install -q --build-constraint "$ROOT/locks/build.txt" -e "$LAB"
    rm -f "$venv"/.gridspawner-lab-installed-*
    touch "$venv/.gridspawner-lab-installed-$key"
done
