#!/usr/bin/env bash
# What the data-mount tests need (idempotent): FUSE tools from Debian, moto in the venv.
#   fuse3 sshfs s3fs rclone           real FUSE mounts (tests/integration/test_mounts_*.py)
#   moto[s3,sts,iam] flask flask-cors the S3/STS/IAM test server (tests/s3)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ensure_apt fuse3 sshfs s3fs rclone openssh-server openssh-client iproute2
if [ -x "$ROOT/.venv/bin/python" ] && ! "$ROOT/.venv/bin/python" -c "import moto, flask, flask_cors" 2>/dev/null; then
    say "pip: installing moto[s3,sts,iam] flask flask-cors into .venv"
    "$ROOT/.venv/bin/pip" install -q "moto[s3,sts,iam]>=5" flask flask-cors
fi
say "mount test dependencies ready"
