"""Usage records on a real hub: one per server, with who/where/what, closed with the right
reason, kept across hub restarts and written when a server dies behind the hub's back."""

from __future__ import annotations

import time

import pytest

from hubtools import procs
from hubtools.usage import records, wait_for

pytestmark = pytest.mark.hub


def test_record_of_a_gpu_server_stopped_through_rest(make_hub, username):
    hub = make_hub()
    hub.create_user(username)
    hub.create_group("ml101", [username])
    before = time.time()
    hub.spawn_ready(username, {"gpus": 2, "gpu_memory": 40, "image": "minimal"}, server_name="train")
    [rec] = records(hub, username)
    assert rec["stopped_at"] is None and rec["stop_reason"] is None
    assert rec["kind"] == "server" and rec["server_name"] == "train"
    assert rec["backend"] == "local" and rec["backend_kind"] == "local"
    assert rec["host"] == "localhost"
    # best fit for 2 × ≥ 40 GB on the fake inventory: the 40 GB card and one 80 GB card
    assert rec["gpus"] == 2 and rec["gpu_model"] == "NVIDIA A100-PCIE-40GB + NVIDIA A100-SXM4-80GB"
    assert rec["gpu_memory_gb"] == 40
    assert rec["image"] == "minimal" and rec["groups"] == ["ml101"]
    assert before <= rec["started_at"] <= time.time()
    time.sleep(1)
    hub.stop_server(username, "train")
    [rec] = records(hub, username)
    assert rec["stop_reason"] == "admin" and rec["stopped_by"] == "service:gridtest", rec
    assert rec["stopped_at"] - rec["started_at"] >= 1
    # the Prometheus counter of GPU-hours has this server's (per backend and GPU model)
    counted = gpu_hours_counted(hub)
    expected = 2 * (rec["stopped_at"] - rec["started_at"]) / 3600
    by_model = {k[1]: v for k, v in counted.items() if k[0] == "local"}
    assert sum(by_model.values()) == pytest.approx(expected, rel=0.05), counted
    assert set(by_model) == {"NVIDIA A100-PCIE-40GB + NVIDIA A100-SXM4-80GB"}


def gpu_hours_counted(hub) -> dict[tuple[str, str], float]:
    from prometheus_client.parser import text_string_to_metric_families

    r = hub.session.get(f"{hub.url}/hub/metrics", timeout=30)
    assert r.status_code == 200
    return {(s.labels["backend"], s.labels["gpu_model"]): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples
            if s.name == "gridspawner_gpu_hours_total"}


def test_records_survive_a_restart_and_servers_killed_behind_the_hubs_back(make_hub, username):
    hub = make_hub(poll_interval=2)
    # 1. a server that dies while the hub runs: the hub's poll closes its record ("ended")
    hub.spawn_ready(username, {"gpus": 1})
    procs.terminate(hub.server_pids(username))
    hub.wait_stopped(username, timeout=30)
    [dead] = wait_for(lambda: [r for r in records(hub, username) if r["stopped_at"] is not None], 20, "closed record")
    assert dead["stop_reason"] == "ended" and dead["gpus"] == 1

    # 2. a server that keeps running across a restart: same record, closed once at its stop
    hub.spawn_ready(username, {"gpus": 1})
    running = records(hub, username)[-1]
    assert running["stopped_at"] is None
    hub.restart_hub()
    assert hub.server(username)["ready"]
    assert records(hub, username)[-1] == running, "the restart changed the open record"

    # 3. a server that dies while the hub is down: closed at the time it was last seen
    hub.stop_hub()
    procs.terminate(hub.server_pids(username))
    hub.start_hub()
    assert hub.server(username) is None
    rows = records(hub, username)
    assert len(rows) == 2, rows
    closed = rows[-1]
    assert closed["id"] == running["id"] and closed["stop_reason"] == "ended"
    assert closed["stopped_at"] == closed["last_seen_at"] and closed["stopped_at"] >= running["started_at"]
