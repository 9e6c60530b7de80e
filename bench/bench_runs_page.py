"""The notebook-run results page with 1,000 runs of a user, served by the gridspawner service
behind a real hub (tests/hubtools), over HTTP through the proxy with the user's hub token:
the page (GET runs: the newest 100 runs rendered, the failing cells and log tails of the
failed ones, from the listing of all 1,000) and one live update (GET runs/rows?since=: only what changed, here nothing), each
fetched 3 times untimed, then ``--rounds`` times; medians beside the target (listing a
user's 1,000 runs renders ≤ 200 ms) as ratios, and beside a baseline measured in the same
run: the same page with 10 runs.

The runs are rows written straight into the gridspawner_runs table (60 % succeeded, 20 %
failed with an error and a log tail, 15 % cancelled, 5 % queued), as the executor leaves them.

    python bench/bench_runs_page.py [--runs 1000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hubtools import Hub, default_grid_config, free_port  # noqa: E402

TARGET = 0.200
SERVICE = "/services/gridspawner/"


def add_runs(hub: Hub, user: str, count: int, start: int = 0) -> None:
    from sqlalchemy import create_engine, insert

    from gridspawner.usage.models import RUNS

    engine = create_engine(f"sqlite:///{hub.workdir / 'gridspawner-usage.sqlite'}")
    now = time.time()
    rows = []
    for i in range(start, start + count):
        t = now - (count - i) * 600
        status = ("succeeded",) * 12 + ("failed",) * 4 + ("cancelled",) * 3 + ("queued",)
        st = status[i % len(status)]
        done = st != "queued"
        rows.append({
            "id": f"{i:016x}", "username": user, "name": f"sweep {i}", "status": st, "backend": "local",
            "backend_kind": "local", "profile": "", "image": "lab", "options": "{}",
            "parameters": json.dumps({"lr": 0.001 * (i % 10), "epochs": i % 7, "tag": f"run-{i}"}),
            "bindings": "{}", "warnings": "[]", "groups": "[]", "gpus": 1, "gpu_memory_gb": 40,
            "gpu_model": "NVIDIA A100-PCIE-40GB" if done else "", "host": "localhost" if done else "",
            "max_runtime": None, "submitted_at": t, "started_at": t + 5 if done else None,
            "finished_at": t + 300 if done else None, "updated_at": t + 300 if done else t,
            "cancel_requested": 0, "error": json.dumps({"cell_index": 3, "ename": "ValueError", "evalue": f"bad {i}",
                                                        "message": "cell 3 raised ValueError"}) if st == "failed" else None,
            "log_tail": "\n".join(f"log line {n}" for n in range(60)) if st == "failed" else "",
        })
    try:
        with engine.begin() as conn:
            conn.execute(insert(RUNS), rows)
    finally:
        engine.dispose()


def median_get(s: requests.Session, url: str, rounds: int, expect: str) -> float:
    for _ in range(3):
        r = s.get(url, timeout=60)
        assert r.status_code == 200 and expect in r.text, (r.status_code, r.text[:300])
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        r = s.get(url, timeout=60)
        times.append(time.perf_counter() - t0)
        assert r.status_code == 200
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    extra = f"from gridspawner.service.settings import enable_service\nenable_service(c, port={free_port()})\n"
    with tempfile.TemporaryDirectory(prefix="bench-runs-page-") as tmp, \
            Hub(default_grid_config(Path(tmp)), workdir=tmp, spawner={"notebook_runs": True}, extra_config=extra) as hub:
        hub.create_user("ada")
        hub.create_user("bo")
        s = requests.Session()
        s.headers["Authorization"] = "token " + hub.api("POST", "/users/ada/tokens", json={}).json()["token"]
        small = requests.Session()
        small.headers["Authorization"] = "token " + hub.api("POST", "/users/bo/tokens", json={}).json()["token"]
        deadline = time.monotonic() + 90
        while s.get(f"{hub.url}{SERVICE}static/runs.js", allow_redirects=False).status_code != 200:
            assert time.monotonic() < deadline, "the service did not come up"
            time.sleep(0.5)
        add_runs(hub, "ada", args.runs)
        add_runs(hub, "bo", 10, start=args.runs)
        page = median_get(s, f"{hub.url}{SERVICE}runs", args.rounds, f"sweep {args.runs - 1}")
        base = median_get(small, f"{hub.url}{SERVICE}runs", args.rounds, "sweep")
        rows = median_get(s, f"{hub.url}{SERVICE}runs/rows?since={time.time():.0f}", args.rounds, "cursor")
    print(f"results page, {args.runs} runs: median {page * 1000:.1f} ms — {page / TARGET:.2f}× the "
          f"target ({TARGET * 1000:.0f} ms); baseline with 10 runs {base * 1000:.1f} ms ({page / base:.1f}×)")
    print(f"live update (runs/rows?since=, {args.runs // 20} active runs re-sent): median {rows * 1000:.1f} ms")


if __name__ == "__main__":
    main()
