"""Notebook runs: four numbers, measured in the same run, on a real hub + proxy + service
(tests/hubtools; local backend, fake nvidia-smi with 4 GPUs, real papermill):

1. submit → running of a run (REST POST api/runs → the run's status is ``running``) vs
   spawn → ready of an interactive server with the same choices (REST spawn → ready →
   /api/status 200 through the proxy); alternating rounds, medians, ratio (target ≤ 1.2);
2. a queued run starts ≤ 1 s after the GPU is released: all 4 GPUs held by runs, a fifth
   queued; the moment the first holder's notebook ends (it writes the time) → the fifth's
   ``started``;
   2b. a queued run waiting for a GPU an interactive server holds starts ≤ 1 s after the
   server's stop (the hub nudges the service): the stop's return → the run's ``started``,
   and its ratio to 1 s;
3. the queue's idle CPU cost with 1,000 queued runs that cannot start (each wants 4 GPUs
   while a server holds one): CPU seconds of the service process and its children per
   second of wall time (target ≤ 1 % of a core);
4. listing a user's 1,000 runs through the API (GET api/runs, median; target ≤ 200 ms).

    python bench/bench_runs.py [--rounds 5] [--idle 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hubtools import Hub, default_grid_config, free_port  # noqa: E402

TARGET_START, TARGET_QUEUE, TARGET_CPU, TARGET_LIST = 1.2, 1.0, 0.01, 0.200


def notebook(body: str) -> bytes:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("seconds = 0.0\nmark = ''")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nbformat.writes(nb).encode()


SLEEP = notebook("import time\ntime.sleep(seconds)\nif mark: open(mark, 'w').write(repr(time.time()))")


def token_session(hub: Hub, name: str) -> requests.Session:
    hub.create_user(name)
    s = requests.Session()
    s.headers["Authorization"] = "token " + hub.api("POST", f"/users/{name}/tokens", json={}).json()["token"]
    return s


def submit(hub: Hub, s: requests.Session, options: dict, params: dict) -> dict:
    r = s.post(f"{hub.url}/services/gridspawner/api/runs", files={"notebook": ("b.ipynb", SLEEP)},
               data={"options": json.dumps(options), "parameters": json.dumps(params)}, timeout=60)
    r.raise_for_status()
    return r.json()


def run(hub: Hub, s: requests.Session, run_id: str) -> dict:
    return s.get(f"{hub.url}/services/gridspawner/api/runs/{run_id}", timeout=30).json()


def wait(hub, s, run_id, statuses, step=0.01, timeout=300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = run(hub, s, run_id)
        if r["status"] in statuses:
            return r
        time.sleep(step)
    raise RuntimeError(f"run {run_id} is still {r['status']}")


def spawn_ready(hub: Hub, user: str, options: dict) -> float:
    t0 = time.perf_counter()
    r = hub.spawn(user, options)
    if r.status_code not in (201, 202):
        raise RuntimeError(f"spawn failed: {r.status_code} {r.text[:300]}")
    while not (hub.server(user) or {}).get("ready"):
        time.sleep(0.01)
    while hub.server_status(user).status_code != 200:
        time.sleep(0.01)
    return time.perf_counter() - t0


def service_pid(hub: Hub) -> int:
    """The gridspawner service this hub started (its child; other hubs may run on the machine)."""
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                parent = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if parent == hub.process.pid and b"gridspawner.service" in (p / "cmdline").read_bytes():
                    return int(p.name)
            except (OSError, ValueError, IndexError):
                pass
    raise RuntimeError("no gridspawner service process")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle", type=float, default=60.0, help="seconds the idle queue is measured")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="gsbench-"))
    grid = default_grid_config(workdir)
    grid.update({"notebook_runs": True, "runs_per_user": 2000})
    extra = f"from gridspawner.service.settings import enable_service\nenable_service(c, port={free_port()})\n"
    hub = Hub(grid, workdir=workdir, extra_config=extra)
    try:
        hub.start()
        while hub.session.get(f"{hub.url}/services/gridspawner/api/runs", allow_redirects=False,
                              timeout=30).status_code == 302:
            time.sleep(0.5)
        s = token_session(hub, "bench")
        hub.create_user("server")
        options = {"backend": "local", "image": "lab", "gpus": 1}

        # 1. submit → running vs spawn → ready
        starts, spawns = [], []
        for i in range(args.rounds + 1):
            t0 = time.perf_counter()
            r = submit(hub, s, options, {"seconds": 0.0})
            wait(hub, s, r["id"], ("running", "succeeded", "failed"))
            t_run = time.perf_counter() - t0
            wait(hub, s, r["id"], ("succeeded", "failed"), step=0.2)
            t_spawn = spawn_ready(hub, "server", options)
            hub.stop_server("server")
            if i:  # the first round warms up
                starts.append(t_run)
                spawns.append(t_spawn)
                print(f"  round {i}: submit→running {t_run:.3f} s, spawn→ready {t_spawn:.3f} s", flush=True)
        r_med, s_med = statistics.median(starts), statistics.median(spawns)

        # 2. a queued run starts after the GPU is released
        marks = Path(tempfile.mkdtemp(prefix="gsmark-"))
        os.chmod(marks, 0o1777)  # the run writes its mark as the user's own account (run_as "user")
        holders = [submit(hub, s, options, {"seconds": 60.0 if k else 6.0, "mark": str(marks / f"m{k}") if not k else ""})
                   for k in range(4)]
        for h in holders:
            wait(hub, s, h["id"], ("running",), step=0.1)
        queued = submit(hub, s, options, {"seconds": 0.0})
        assert run(hub, s, queued["id"])["status"] == "queued"
        started = wait(hub, s, queued["id"], ("running", "succeeded", "failed"), step=0.05)["started"]
        ended = float((marks / "m0").read_text())
        released = run(hub, s, holders[0]["id"])["finished"]  # set right after its GPU was freed
        gap, from_end = started - released, started - ended
        wait(hub, s, queued["id"], ("succeeded", "failed"), step=0.2)

        # 2b. a queued run waiting for the GPU an interactive server holds: the server's stop
        # nudges the service, which tries the queue at once (not at its next retry)
        hub.spawn_ready("server", options)  # the last free GPU (the other 3 held by runs)
        behind = submit(hub, s, options, {"seconds": 0.0})
        time.sleep(5)  # the executor found no room: its next retry is seconds away
        assert run(hub, s, behind["id"])["status"] == "queued"
        asked = time.time()
        r = hub.api("DELETE", "/users/server/server")
        returned = time.time()
        if r.status_code == 202:  # the hub answered before the stop was done
            hub.wait_stopped("server")
            returned = time.time()
        stop_started = wait(hub, s, behind["id"], ("running", "succeeded", "failed"), step=0.02)["started"]
        nudge_gap, nudge_from_ask = stop_started - returned, stop_started - asked
        wait(hub, s, behind["id"], ("succeeded", "failed"), step=0.2)
        for h in holders[1:]:
            s.post(f"{hub.url}/services/gridspawner/api/runs/{h['id']}/cancel", timeout=60)

        # 3. 1,000 queued runs that cannot start: the queue's idle cost
        hub.spawn_ready("server", options)  # holds one GPU: no run of 4 GPUs fits
        for h in holders[1:]:
            wait(hub, s, h["id"], ("cancelled", "succeeded", "failed"), step=0.2)
        big = {"backend": "local", "image": "lab", "gpus": 4}
        t0 = time.perf_counter()
        for _ in range(1000):
            submit(hub, s, big, {"seconds": 0.0})
        print(f"  1,000 submits: {time.perf_counter() - t0:.1f} s", flush=True)
        time.sleep(45)  # the retries of the blocked queue back off to runs_queue_retry_max
        pid = service_pid(hub)
        c0, w0 = cpu_seconds(pid), time.monotonic()
        time.sleep(args.idle)
        cpu = (cpu_seconds(pid) - c0) / (time.monotonic() - w0)

        # 4. listing the user's runs
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            r = s.get(f"{hub.url}/services/gridspawner/api/runs", timeout=60)
            times.append(time.perf_counter() - t0)
            assert r.status_code == 200 and len(r.json()["runs"]) >= 1000
        listing = statistics.median(times)
    finally:
        hub.close()

    print()
    print("notebook runs (local backend, fake GPUs; this machine)")
    print(f"  submit→running median {r_med:.3f} s vs spawn→ready median {s_med:.3f} s: "
          f"ratio {r_med / s_med:.3f} (target ≤ {TARGET_START})")
    print(f"  queued run started {gap:.3f} s after the GPU was released (target ≤ {TARGET_QUEUE} s); "
          f"{from_end:.3f} s after the holder's last cell ended (papermill's own shutdown included)")
    print(f"  queued run behind an interactive server started {nudge_gap:.3f} s after the server's stop returned: "
          f"ratio {nudge_gap / TARGET_QUEUE:.3f} to {TARGET_QUEUE} s ({nudge_from_ask:.3f} s after the stop was asked)")
    print(f"  idle queue of 1,000 runs: {cpu * 100:.2f} % of a core (target ≤ {TARGET_CPU * 100:.0f} %)")
    print(f"  GET api/runs with 1,000+ runs: median {listing * 1000:.1f} ms (target ≤ {TARGET_LIST * 1000:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
