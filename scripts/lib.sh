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

# ensure_chp : configurable-http-proxy in $ROOT/.node (put .node/node_modules/.bin on PATH).
ensure_chp() {
    if [ -x "$ROOT/.node/node_modules/.bin/configurable-http-proxy" ]; then
        return 0
    fi
    ensure_node
    say "npm: installing configurable-http-proxy into .node/"
    npm install --prefix "$ROOT/.node" --no-audit --no-fund --loglevel=error configurable-http-proxy
}

# ensure_venv DIR SPEC... : a virtualenv at $ROOT/DIR with `pip install SPEC...` done.
# A stamp keyed on the specs and pyproject.toml skips pip when nothing changed.
ensure_venv() {
    local name="$1" dir="$ROOT/$1"; shift
    local key stamp
    key="$( (printf '%s\n' "$@"; cat "$ROOT/pyproject.toml") | sha256sum | cut -c1-16)"
    stamp="$dir/.gridspawner-installed-$key"
    if [ -e "$stamp" ] && [ -x "$dir/bin/python" ]; then
        return 0
    fi
    if [ ! -x "$dir/bin/python" ]; then
        if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
            ensure_apt python3-venv
        fi
        say "creating $name"
        "$PYTHON" -m venv "$dir"
        "$dir/bin/python" -m pip install -q --upgrade pip
    fi
    say "pip: installing into $name: $*"
    (cd "$ROOT" && "$dir/bin/python" -m pip install -q "$@")
    rm -f "$dir"/.gridspawner-installed-*
    touch "$stamp"
}
