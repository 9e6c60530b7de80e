"""Usage recording's cost at spawn: GridSpawner's local backend with records on vs off.

Two real hubs + proxies (tests/hubtools), the same config except ``record_usage``; one spawn
= REST POST → ready → GET /user/NAME/api/status 200 through the proxy, then a stop (whose
record is closed too). The hubs alternate (after an untimed warm-up each) so machine noise
hits both alike. Prints both medians, their ratio (target: ≤ 1.02, i.e. recording adds at
most 2 %), and the recording's own work measured in the same run: the start and stop
writes of one record on a SQLite file like the hub's, as a share of the median spawn.

    python bench/bench_usage_recording.py [--rounds 12] [--gpus 1]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_spawn_local import one_spawn  # noqa: E402 - the same timed spawn as that bench
from hubtools import Hub, default_grid_config  # noqa: E402

TARGET = 1.02


def record_writes(n: int = 200) -> float:
    """Median seconds of one record's writes (open at start, close at stop) on a SQLite file."""
    from gridspawner.usage.store import UsageStore

    async def run(store: UsageStore) -> list[float]:
        times = []
        for i in range(n):
            now = time.time()
            t0 = time.perf_counter()
            rid = await store.open({
                "kind": "server", "run_id": None, "username": f"u{i}", "server_name": "", "backend": "local",
                "backend_kind": "local", "host": "localhost", "gpus": 1, "gpu_model": "Tesla T4", "gpu_memory_gb": 16,
                "cpu": None, "memory_gb": None, "image": "lab", "profile": "", "price_per_hour": 0.5,
                "currency": "EUR", "started_at": now, "last_seen_at": now}, ["ml101"])
            await store.close_record(rid, now + 1, "user", f"u{i}")
            times.append(time.perf_counter() - t0)
        return times

    with tempfile.TemporaryDirectory() as d:
        store = UsageStore(f"sqlite:///{d}/usage.sqlite")
        store.upgrade()
        try:
            return statistics.median(asyncio.run(run(store)))
        finally:
            store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=12, help="timed spawns per hub (default 12)")
    parser.add_argument("--gpus", type=int, default=1, help="GPUs per spawn (fake nvidia-smi; default 1)")
    args = parser.parse_args()

    hubs = {}
    for name, record in (("recording", True), ("off", False)):
        workdir = Path(tempfile.mkdtemp(prefix=f"gridbench-{name}-"))
        grid = default_grid_config(workdir)
        grid["record_usage"] = record
        hubs[name] = Hub(grid, workdir=workdir)
    runs: dict[str, list[float]] = {name: [] for name in hubs}
    options = {"backend": "local", "image": "lab", "gpus": args.gpus}
    try:
        for hub in hubs.values():
            hub.start()
            hub.create_user("bench")
            one_spawn(hub, "bench", options)  # warm-up: imports, page cache, schema
        for i in range(args.rounds):
            order = list(hubs.items())
            if i % 2:
                order.reverse()
            for name, hub in order:
                t = one_spawn(hub, "bench", options)
                runs[name].append(t)
                print(f"  round {i + 1:2d} {name:9s} {t:6.3f} s", flush=True)
    finally:
        for hub in hubs.values():
            hub.close()

    on, off = statistics.median(runs["recording"]), statistics.median(runs["off"])
    writes = record_writes()
    print()
    print(f"spawn-to-ready, median of {args.rounds} (REST POST → ready → /api/status 200 through the proxy)")
    print(f"  record_usage = True:   {on:.3f} s   (min {min(runs['recording']):.3f}, max {max(runs['recording']):.3f})")
    print(f"  record_usage = False:  {off:.3f} s   (min {min(runs['off']):.3f}, max {max(runs['off']):.3f})")
    print(f"  ratio on/off:          {on / off:.3f}   (target ≤ {TARGET})")
    print(f"  one record's writes (start + stop, SQLite): {writes * 1000:.2f} ms = "
          f"{writes / off * 100:.2f} % of the spawn (target ≤ {(TARGET - 1) * 100:.0f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
