"""Spawn-to-ready time: GridSpawner's local backend vs JupyterHub's SimpleLocalProcessSpawner.

Both run on this machine, under a real hub + configurable-http-proxy (tests/hubtools), with
the same jupyterhub-singleuser. One spawn = REST POST /hub/api/users/NAME/server → the hub
reports the server ready → GET /user/NAME/api/status through the proxy answers 200. The two
spawners alternate (after one untimed warm-up each) so machine noise hits both alike.
Prints both medians and the ratio grid/simple (target: ≤ 1.15).

    python bench/bench_spawn_local.py [--rounds 10] [--gpus 0]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hubtools import Hub  # noqa: E402

TARGET = 1.15


def one_spawn(hub: Hub, user: str, options: dict) -> float:
    t0 = time.perf_counter()
    r = hub.spawn(user, options)
    if r.status_code not in (201, 202):
        raise RuntimeError(f"spawn failed: {r.status_code} {r.text[:300]}")
    while not (hub.server(user) or {}).get("ready"):
        time.sleep(0.02)
    while hub.server_status(user).status_code != 200:
        time.sleep(0.02)
    elapsed = time.perf_counter() - t0
    hub.stop_server(user)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="timed spawns per spawner (default 10)")
    parser.add_argument("--gpus", type=int, default=0, help="GPUs per GridSpawner spawn (fake nvidia-smi; default 0)")
    args = parser.parse_args()

    grid = Hub()  # the default test config: local backend, fake 4-GPU nvidia-smi
    simple = Hub(spawner_class="simple", spawner={"args": ["--allow-root"]}, gpus=None)
    runs = {"grid": [], "simple": []}
    try:
        grid.start()
        simple.start()
        grid.create_user("bench")
        simple.create_user("bench")
        grid_options = {"backend": "local", "image": "lab", "gpus": args.gpus}
        one_spawn(grid, "bench", grid_options)  # warm-up: imports, page cache
        one_spawn(simple, "bench", {})
        for i in range(args.rounds):
            order = [("grid", grid, grid_options), ("simple", simple, {})]
            if i % 2:
                order.reverse()
            for name, hub, options in order:
                t = one_spawn(hub, "bench", options)
                runs[name].append(t)
                print(f"  round {i + 1:2d} {name:6s} {t:6.3f} s", flush=True)
    finally:
        grid.close()
        simple.close()

    g, s = statistics.median(runs["grid"]), statistics.median(runs["simple"])
    ratio = g / s
    print()
    print(f"spawn-to-ready, median of {args.rounds} (REST POST → ready → /api/status 200 through the proxy)")
    print(f"  GridSpawner (local backend):    {g:.3f} s   (min {min(runs['grid']):.3f}, max {max(runs['grid']):.3f})")
    print(f"  SimpleLocalProcessSpawner:      {s:.3f} s   (min {min(runs['simple']):.3f}, max {max(runs['simple']):.3f})")
    print(f"  ratio grid/simple:              {ratio:.3f}   (target ≤ {TARGET})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
