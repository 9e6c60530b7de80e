#!/usr/bin/env python3
"""The Slurm lab's ``nvidia-smi`` (copied to the lab's bin/): answers like the real one on the
node it runs on, through tests/fixtures/fake_nvidia_smi.

All nodes share one filesystem and one PATH, so the node is told apart by its network
namespace (``/proc/self/ns/net`` reads ``net:[INODE]``, for any account); ``gpus.json`` beside
this file maps that to the node's cards (device file, name, MiB, UUID). A card whose device
file the devices cgroup forbids (open fails with EPERM: Slurm's ConstrainDevices in a job) is
not listed, and the visible ones are numbered from 0, as the driver does; their UUIDs stay.
Outside the lab's compute nodes: no GPU.
"""

import errno
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def visible(device: str) -> bool:
    try:
        os.close(os.open(device, os.O_RDONLY | os.O_NONBLOCK))
    except OSError as e:  # ENXIO: allowed, but no driver behind the lab's device node
        return e.errno != errno.EPERM
    return True


def main(argv):
    with open(os.path.join(HERE, "gpus.json")) as f:
        nodes = json.load(f)
    node = nodes.get(os.readlink("/proc/self/ns/net"), {"gpus": []})
    spec = ";".join(f"{g['name']},{g['mib']},0,{g['uuid']}" for g in node["gpus"] if visible(g["device"]))
    os.environ["FAKE_NVIDIA_SMI_GPUS"] = spec
    fake = os.path.join(HERE, "fake_nvidia_smi")
    os.execv(sys.executable, [sys.executable, fake, *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
