# Shared helpers for the install scripts. Source it; do not run it.
# Every helper is idempotent and fast when its work is already done, so `make test` on a
# prepared machine spends its time on tests, not installs.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# ensure_apt PKG... : install the Debian packages that are not installed yet (one apt run).
_apt_updated=""
ensure_apt() {
    local missing=() pkg
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$pkg")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "apt: installing ${missing[*]}"
    if [ -z "$_apt_updated" ]; then
        as_root apt-get update -qq
        _apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# apt_packages FILE : the package names listed in FILE (one a line, '#' comments).
apt_packages() {
    sed -e 's/#.*//' -e 's/[[:space:]]\+$//' -e '/^[[:space:]]*$/d' "$1"
}

# ensure_node : node + npm (Debian's nodejs runs configurable-http-proxy fine).
ensure_node() {
    if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
        return 0
    fi
    ensure_apt nodejs npm
}

# ensure_chp : configurable-http-proxy (and axe-core, the browser tests' accessibility
# checker) in $ROOT/.node at the versions locks/node/ pins (package.json +
# package-lock.json, installed with `npm ci`). A stamp keyed on the lock skips npm when
# nothing changed. Put .node/node_modules/.bin on PATH.
ensure_chp() {
    local dir="$ROOT/.node" key
    key="$(cat "$ROOT/locks/node/package.json" "$ROOT/locks/node/package-lock.json" | sha256sum | cut -c1-16)"
    if [ -e "$dir/.gridspawner-installed-$key" ] && [ -x "$dir/node_modules/.bin/configurable-http-proxy" ] \
        && [ -e "$dir/node_modules/axe-core/axe.min.js" ]; then
        return 0
    fi
    ensure_node
    say "npm: installing the locked configurable-http-proxy and axe-core into .node/"
    mkdir -p "$dir"
    cp "$ROOT/locks/node/package.json" "$ROOT/locks/node/package-lock.json" "$dir/"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    rm -f "$dir"/.gridspawner-installed-*
    touch "$dir/.gridspawner-installed-$key"
}

# lock_pin LOCK NAME : the version LOCK pins for NAME (empty if none).
lock_pin() {
    sed -n "s/^$2==\([^[:space:]]*\).*/\1/p" "$1" | head -n 1
}

# ensure_venv DIR LOCK REQUIREMENT... : a virtualenv at $ROOT/DIR holding exactly what LOCK
# (a file under locks/) pins for REQUIREMENT... (e.g. "gridspawner[test,docs]").
#   1. pip at the locked version; 2. every locked distribution, without dependency
#   resolution (`--no-deps`: the lock is the resolution); 3. gridspawner itself, editable,
#   built with the locked setuptools; 4. scripts/lockset.py checks that everything the
#   requirements need is installed at the locked version (a dependency added to
#   pyproject.toml but not to the lock fails here: run `make lock`).
# A stamp keyed on the lock, pyproject.toml and the requirements skips all of this when
# nothing changed; a changed lock installs again. An environment holds one stamp at most:
# the one of its last complete install (removed before, written after it).
ensure_venv() {
    local name="$1" dir="$ROOT/$1" lock_name="$2" lock="$ROOT/$2"; shift 2
    local stamp pip_version
    if venv_ready "$name" "$lock_name" "$@"; then
        return 0
    fi
    stamp="$dir/.gridspawner-installed-$(venv_key "$lock_name" "$@")"
    if [ ! -x "$dir/bin/python" ]; then
        if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
            ensure_apt python3-venv
        fi
        say "creating $name"
        "$PYTHON" -m venv "$dir"
    fi
    rm -f "$dir"/.gridspawner-installed-*  # whatever is installed now, it is not a stamped state
    pip_version="$(lock_pin "$lock" pip)"
    say "pip: installing the $(grep -c '==' "$lock") distributions $lock_name pins into $name"
    # each step must succeed before the next (also where the caller has no `set -e`)
    "$dir/bin/python" -m pip install -q ${pip_version:+"pip==$pip_version"} || return 1
    "$dir/bin/python" -m pip install -q --no-deps -r "$lock" || return 1
    (cd "$ROOT" && "$dir/bin/python" -m pip install -q --no-deps --no-build-isolation -e .) || return 1
    "$dir/bin/python" "$ROOT/scripts/lockset.py" check "$lock" "$@" || return 1
    touch "$stamp"
}

# venv_key LOCK REQUIREMENT... : what an install of REQUIREMENT... from LOCK depends on.
venv_key() {
    local lock="$ROOT/$1"; shift
    (printf '%s\n' "$@"; cat "$ROOT/pyproject.toml" "$lock") | sha256sum | cut -c1-16
}

# venv_ready DIR LOCK REQUIREMENT... : whether DIR's last complete install was exactly this.
venv_ready() {
    local dir="$ROOT/$1" lock_name="$2"; shift 2
    [ -x "$dir/bin/python" ] && [ -e "$dir/.gridspawner-installed-$(venv_key "$lock_name" "$@")" ]
}

# ensure_latest_venv DIR SPEC... : a virtualenv at $ROOT/DIR with the NEWEST releases of
# SPEC... (pip install --upgrade --upgrade-strategy eager), for `make test-latest` and
# `make lock`; never used by `make test`.
ensure_latest_venv() {
    local name="$1" dir="$ROOT/$1"; shift
    if [ ! -x "$dir/bin/python" ]; then
        say "creating $name"
        "$PYTHON" -m venv "$dir"
    fi
    say "pip: installing the newest releases into $name: $*"
    "$dir/bin/python" -m pip install -q --upgrade pip setuptools wheel
    (cd "$ROOT" && "$dir/bin/python" -m pip install -q --upgrade --upgrade-strategy eager "$@")
}
