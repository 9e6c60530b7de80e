"""The usage pages over a large database: a user's page and the admin's aggregate with
100,000 records, served by the gridspawner service behind a real hub (tests/hubtools), over
HTTP through the proxy with the user's (the admin's) hub token.

The database is filled with 100,000 closed server records (1,000 users in 20 groups, 4 GPU
models, 3 backends, spread over the last 365 days; the measured user has 100 of them). Each
page is fetched 3 times untimed, then ``--rounds`` times; the medians are printed beside
their targets (user page ≤ 200 ms, admin aggregate ≤ 500 ms) as ratios, and beside a
baseline measured in the same run: the same pages over a database of 1,000 records.

    python bench/bench_usage_pages.py [--records 100000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hubtools import Hub, default_grid_config, free_port  # noqa: E402

USER_TARGET = 0.200
ADMIN_TARGET = 0.500
ADMIN = "benchadmin"
USER = "user0007"
MODELS = ["NVIDIA A100-SXM4-80GB", "NVIDIA A100-PCIE-40GB", "Tesla T4", "NVIDIA L4"]
BACKENDS = ["local", "cluster", "lab-hosts"]


def fill(db: Path, count: int, seed: int = 7) -> None:
    """``count`` closed records (the schema made by the hub at its start)."""
    from sqlalchemy import create_engine, insert

    from gridspawner.usage.models import GROUPS, RECORDS

    rnd = random.Random(seed)
    now = time.time()
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.begin() as conn:
            records, groups = [], []
            for i in range(count):
                user = USER if i % max(1, count // 100) == 0 else f"user{rnd.randrange(1000):04d}"
                start = now - rnd.uniform(0, 365 * 86400)
                hours = rnd.uniform(0.1, 8)
                gpus = rnd.choice([0, 1, 1, 2, 4])
                records.append({
                    "id": i + 1, "kind": "server", "run_id": None, "username": user, "server_name": "",
                    "backend": rnd.choice(BACKENDS), "backend_kind": "local", "host": f"gpu{rnd.randrange(20):02d}",
                    "gpus": gpus, "gpu_model": rnd.choice(MODELS) if gpus else "", "gpu_memory_gb": 40 if gpus else 0,
                    "cpu": None, "memory_gb": None, "image": "lab", "profile": "", "price_per_hour": 1.2 * gpus,
                    "currency": "EUR", "started_at": start, "last_seen_at": start + hours * 3600,
                    "stopped_at": start + hours * 3600, "stop_reason": rnd.choice(["user", "idle", "max_runtime"]),
                    "stopped_by": None})
                groups.append({"record_id": i + 1, "group_name": f"course{int(user[4:]) % 20:02d}"})
            conn.execute(insert(RECORDS), records)
            conn.execute(insert(GROUPS), groups)
    finally:
        engine.dispose()


def timed(hub: Hub, url: str, token: str, rounds: int) -> float:
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"token {token}"
    for _ in range(3):
        r = session.get(url, timeout=60)
        r.raise_for_status()
    assert "GPU usage" in r.text and "<table" in r.text, r.text[:300]  # the page itself, not a login redirect
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        r = session.get(url, timeout=60)
        times.append(time.perf_counter() - t0)
        r.raise_for_status()
    return statistics.median(times)


def wait_for_service(url: str, token: str, timeout: float = 60) -> None:
    """The hub starts its managed service in the background: wait until it answers."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, headers={"Authorization": f"token {token}"}, timeout=10).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the gridspawner service did not answer at {url}")


def measure(count: int, rounds: int) -> tuple[float, float]:
    workdir = Path(tempfile.mkdtemp(prefix="gridbench-pages-"))
    extra = ("from gridspawner.service.settings import enable_service\n"
             f"enable_service(c, port={free_port()}, admin_users=[{ADMIN!r}])\n")
    hub = Hub(default_grid_config(workdir), workdir=workdir, extra_config=extra)
    try:
        hub.start()  # makes the schema
        fill(workdir / "gridspawner-usage.sqlite", count)
        tokens = {}
        for name in (USER, ADMIN):
            hub.create_user(name)
            r = hub.api("POST", f"/users/{name}/tokens", json={"note": "bench"})
            r.raise_for_status()
            tokens[name] = r.json()["token"]
        base = f"{hub.url}/services/gridspawner/"
        wait_for_service(f"{base}api/records?limit=1", tokens[USER])
        user = timed(hub, f"{base}?period=year", tokens[USER], rounds)
        admin = timed(hub, f"{base}admin?period=year&by=user", tokens[ADMIN], rounds)
        return user, admin
    finally:
        hub.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    base_user, base_admin = measure(1_000, args.rounds)
    user, admin = measure(args.records, args.rounds)
    print(f"usage pages, median of {args.rounds} GETs through the proxy (this year; admin summed by user)")
    print(f"  user page,  {args.records:>7,} records: {user * 1000:7.1f} ms   ratio to target {user / USER_TARGET:.2f} "
          f"(≤ 1 = within {USER_TARGET * 1000:.0f} ms); vs 1,000 records ({base_user * 1000:.1f} ms): {user / base_user:.2f}")
    print(f"  admin page, {args.records:>7,} records: {admin * 1000:7.1f} ms   ratio to target {admin / ADMIN_TARGET:.2f} "
          f"(≤ 1 = within {ADMIN_TARGET * 1000:.0f} ms); vs 1,000 records ({base_admin * 1000:.1f} ms): {admin / base_admin:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
