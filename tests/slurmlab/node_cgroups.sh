#!/bin/sh
# node_cgroups.sh TAG MOUNTPOINT HOSTNAME COMMAND... (root; the Slurm lab runs each slurmd so)
#
# Runs COMMAND as one machine of the lab: its own hostname (UTS namespace) and, so that
# several slurmds on one machine (and several labs at once) never share cgroup directories,
# its own cgroup v1 freezer and devices hierarchies: /sys/fs/cgroup/{freezer,devices}/TAG
# become the roots of a new cgroup namespace, mounted at MOUNTPOINT/{freezer,devices} in a
# private mount namespace (slurm's cgroup.conf: CgroupMountpoint=MOUNTPOINT). Slurm's
# slurm_NODE/uid_U/job_J/... directories land under TAG; the lab removes TAG at teardown.
set -eu
if [ "$1" = --inside ]; then
    mp=$2 host=$3
    shift 3
    mount -t tmpfs -o mode=755 slurmlab-cgroup "$mp"
    for c in freezer devices; do
        mkdir "$mp/$c"
        mount -t cgroup -o "$c" "slurmlab-$c" "$mp/$c"
    done
    hostname "$host"
    exec "$@"
fi
tag=$1
shift
for c in freezer devices; do
    mkdir -p "/sys/fs/cgroup/$c/$tag"
    echo $$ > "/sys/fs/cgroup/$c/$tag/cgroup.procs"
done
exec unshare --cgroup --mount --uts --propagation private sh "$0" --inside "$@"
