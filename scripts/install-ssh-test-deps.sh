#!/usr/bin/env bash
# What the ssh backend's tests and bench need (tests/sshhosts: sshd hosts in network
# namespaces): openssh-server (sshd), openssh-client (ssh-keygen), iproute2 (ip netns, ss),
# util-linux (unshare, runuser), passwd (useradd for the second-user test), procps (ps).
# Idempotent: installs only what is missing; also creates sshd's privilege separation dir.
# No service is started (tests start every sshd themselves and stop it by PID).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ensure_apt openssh-server openssh-client iproute2 util-linux passwd procps
as_root mkdir -p /run/sshd
# Debian's openssh-server package enables a system sshd unit; on machines without systemd
# nothing starts it, and the tests never use it.
say "ssh test dependencies ready"
