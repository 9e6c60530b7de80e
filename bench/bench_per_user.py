"""Spawn-to-ready time of the local backend: each server as its user's own account in its own
cgroup (``run_as: "user"``, ``enforce_limits``, with a CPU and memory choice) vs every
server as the hub's account without limits (``run_as: "hub"``, ``enforce_limits: false``).

Both hubs run on this machine at once (tests/hubtools: real hub + configurable-http-proxy),
with the same jupyterhub-singleuser. One spawn = REST POST → the hub reports the server
ready → GET /user/NAME/api/status through the proxy answers 200. The two alternate (after
one untimed warm-up each, which also creates the account) so machine noise hits both alike.
Prints both medians and the ratio per-user/hub (target: ≤ 1.1). Needs root.

    python bench/bench_per_user.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench_spawn_local import one_spawn  # noqa: E402 - the same timed spawn as that bench
from hubtools import Hub  # noqa: E402
from hubtools.hub import default_grid_config  # noqa: E402

TARGET = 1.1
LIMITS = "c.GridSpawner.cpu_choices = [1, 2]\nc.GridSpawner.memory_choices = [2, 4]"


def hub_with(workdir: Path, **backend) -> Hub:
    grid = default_grid_config(workdir)
    local = grid["backends"]["local"]
    local.update(backend)
    if backend.get("run_as") == "hub":  # the harness's per-user account keys do not apply
        local.pop("account", None)
        local.pop("create_accounts", None)
    return Hub(grid, workdir=workdir, extra_config=LIMITS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="timed spawns per hub (default 10)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (per-user accounts and cgroups)", file=sys.stderr)
        return 2

    workdirs = [Path(tempfile.mkdtemp(prefix="gridbench-")) for _ in range(2)]
    per_user = hub_with(workdirs[0], run_as="user", enforce_limits=True)  # the harness adds account + create_accounts
    shared = hub_with(workdirs[1], run_as="hub", enforce_limits=False)
    hubs = {"per-user": (per_user, {"backend": "local", "image": "lab", "gpus": 0, "cpu": 1, "memory": 2}),
            "hub": (shared, {"backend": "local", "image": "lab", "gpus": 0})}
    runs: dict[str, list[float]] = {name: [] for name in hubs}
    try:
        for hub, options in hubs.values():
            hub.start()
            hub.create_user("bench")
            one_spawn(hub, "bench", options)  # warm-up: imports, page cache, the account
        for i in range(args.rounds):
            order = list(hubs.items())
            if i % 2:
                order.reverse()
            for name, (hub, options) in order:
                t = one_spawn(hub, "bench", options)
                runs[name].append(t)
                print(f"  round {i + 1:2d} {name:8s} {t:6.3f} s", flush=True)
    finally:
        for hub, _ in hubs.values():
            hub.close()
        for d in workdirs:
            shutil.rmtree(d, ignore_errors=True)

    u, h = statistics.median(runs["per-user"]), statistics.median(runs["hub"])
    print()
    print(f"spawn-to-ready, median of {args.rounds} (REST POST → ready → /api/status 200 through the proxy)")
    print(f"  per-user account + cgroup (cpu 1, 2 GB): {u:.3f} s   (min {min(runs['per-user']):.3f}, max {max(runs['per-user']):.3f})")
    print(f"  hub's account, no limits:                {h:.3f} s   (min {min(runs['hub']):.3f}, max {max(runs['hub']):.3f})")
    print(f"  ratio per-user/hub:                      {u / h:.3f}   (target ≤ {TARGET})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
