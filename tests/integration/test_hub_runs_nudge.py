"""A queued run waiting for the GPU an interactive server holds starts as soon as the server
stops, through a real hub, proxy and gridspawner service: the hub's stop nudges the service
(``POST api/runs/nudge`` with the hub's token), which tries the backend's queue at once —
not at its next retry (here 60 s, so only the nudge can start it in time). The nudge
endpoint refuses anyone without the hub's token. The delay is printed; the bound is
generous (the speed target lives in bench/bench_runs.py)."""

from __future__ import annotations

import json
import time

import pytest
import requests
from test_hub_runs import api, client, notebook, wait_service_routed, wait_status

from hubtools import Hub, default_grid_config, free_port

pytestmark = pytest.mark.hub

ONE_GPU = [("NVIDIA A100-SXM4-80GB", 81920)]


@pytest.fixture(scope="module")
def nudge_hub(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hub")
    grid = default_grid_config(workdir)
    grid.update({"notebook_runs": True, "runs_poll_interval": 0.5, "runs_queue_retry": 60.0,
                 "runs_queue_retry_max": 60.0, "default_quota": {"gpus_at_once": 2}})
    extra = ("from gridspawner.service.settings import enable_service\n"
             f"enable_service(c, port={free_port()})\n")
    with Hub(grid, workdir=workdir, extra_config=extra, gpus=ONE_GPU) as hub:
        wait_service_routed(hub)
        yield hub
    assert not hub.leftover_pids()


def test_a_run_queued_behind_a_server_starts_when_the_server_stops(nudge_hub, username):
    hub = nudge_hub
    alice = client(hub, username)
    hub.spawn_ready(username, {"gpus": 1})  # the only GPU
    r = alice.post(api(hub), files={"notebook": ("n.ipynb", notebook("print('ran', value)"))},
                   data={"options": json.dumps({"gpus": 1})}, timeout=60)
    assert r.status_code == 201, r.text
    url = api(hub, f"/{r.json()['id']}")
    time.sleep(2.0)  # the executor has tried and found no room: its next try is 60 s away
    assert alice.get(url, timeout=30).json()["status"] == "queued"
    sent = time.time()
    assert hub.stop_server(username, wait=False).status_code in (202, 204)
    hub.wait_stopped(username)
    stopped = time.time()
    run = wait_status(alice, url, ("running", "succeeded", "failed"), timeout=30)
    delay = run["started"] - stopped
    print(f"\nqueued run started {delay:.3f} s after the server's stop returned "
          f"({run['started'] - sent:.3f} s after the stop was asked)")
    assert run["started"] - sent < 10, run  # without the nudge: the next retry, 60 s later
    assert wait_status(alice, url, ("succeeded", "failed"))["status"] == "succeeded"


def test_only_the_hub_may_nudge(nudge_hub, username):
    hub = nudge_hub
    url = api(hub, "/nudge")
    body = json.dumps({"backend": "local"})
    assert requests.post(url, data=body, timeout=30).status_code == 403
    assert requests.post(url, data=body, headers={"Authorization": "token wrong"}, timeout=30).status_code == 403
    alice = client(hub, username)  # a user's token is not the hub's
    assert alice.post(url, data=body, timeout=30).status_code == 403
