#!/usr/bin/env bash
# What the data-mount tests need besides the venv (idempotent): FUSE tools from Debian.
#   fuse3 sshfs s3fs rclone           real FUSE mounts (tests/integration/test_mounts_*.py)
# The S3/STS/IAM test server (moto[s3,sts,iam] flask flask-cors, tests/s3) is part of the
# [test] extra, at the version locks/venv.txt pins.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ensure_apt fuse3 sshfs s3fs rclone openssh-server openssh-client iproute2
say "mount test dependencies ready"
