"""gridspawner's Prometheus metrics, scraped from a REAL hub's /hub/metrics (served by
JupyterHub itself, behind its read:metrics scope): spawn outcomes per backend, refused
fields, GPUs free and used from the capacity cache, maximum-run-time stops."""

from __future__ import annotations

import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.hub

Samples = dict[tuple[str, frozenset], float]


def scrape(hub) -> Samples:
    r = hub.session.get(f"{hub.url}/hub/metrics", timeout=30)
    assert r.status_code == 200, r.text[:300]
    samples: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def gpus(samples: Samples, state: str) -> dict[str, float]:
    """{memory_gb: count} of the local backend's GPUs in ``state``."""
    out = {}
    for (name, labels), v in samples.items():
        labels = dict(labels)
        if name == "gridspawner_gpus" and labels["backend"] == "local" and labels["state"] == state:
            out[labels["memory_gb"]] = v
    return out


def scrape_until(hub, check, timeout: float = 30) -> Samples:
    """Scrape until ``check(samples)`` holds (the capacity cache refreshes in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(hub)
        if check(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.3)


def test_metrics_need_the_read_metrics_scope(hub):
    r = requests.get(f"{hub.url}/hub/metrics", timeout=30)
    assert r.status_code == 403
    assert "gridspawner_" not in r.text


@pytest.mark.jh5
def test_spawns_refusals_and_gpus_are_counted(hub, username):
    hub.create_user(username)
    inventory = {"80": 2, "40": 1, "16": 1}  # tests/hubtools FAKE_GPUS, by nominal size
    before = scrape_until(hub, lambda s: sum(gpus(s, "free").values()) + sum(gpus(s, "used").values()) == 4)
    assert value(before, "gridspawner_capacity_probe_ok", backend="local") == 1
    assert value(before, "gridspawner_hosts", backend="local", state="reachable") == 1
    assert value(before, "gridspawner_hosts", backend="local", state="unreachable") == 0
    assert 0 <= value(before, "gridspawner_capacity_age_seconds", backend="local") < 120
    totals = {gb: gpus(before, "free").get(gb, 0) + gpus(before, "used").get(gb, 0) for gb in inventory}
    assert totals == inventory

    # a refused request counts its field, never the value or a made-up option name
    r = hub.spawn(username, {"backend": "local", "image": "lab", "gpus": 9, "no_such_option_xyz": 1})
    assert r.status_code == 400, r.text
    # a spawn that cannot fit: no_capacity
    r = hub.spawn(username, {"backend": "local", "image": "lab", "gpus": 3, "gpu_memory": 80})
    assert r.status_code == 503, r.text
    hub.wait_stopped(username)
    # and one that starts, on an 80 GB card
    hub.spawn_ready(username, {"backend": "local", "image": "lab", "gpus": 1, "gpu_memory": 80})
    free80 = gpus(before, "free").get("80", 0)
    during = scrape_until(hub, lambda s: gpus(s, "free").get("80", 0) == free80 - 1)
    assert gpus(during, "free").get("80", 0) == free80 - 1
    assert gpus(during, "used").get("80", 0) == gpus(before, "used").get("80", 0) + 1

    def delta(name, **labels):
        return value(during, name, **labels) - value(before, name, **labels)

    assert delta("gridspawner_rejected_options_total", field="gpus") == 1
    assert delta("gridspawner_rejected_options_total", field="other") == 1
    assert not any("no_such_option_xyz" in str(labels) for _, labels in during)
    assert delta("gridspawner_spawn_duration_seconds_count", backend="local", outcome="success") == 1
    assert delta("gridspawner_spawn_duration_seconds_count", backend="local", outcome="no_capacity") == 1
    assert delta("gridspawner_spawn_duration_seconds_sum", backend="local", outcome="success") > 0
    # JupyterHub's own metrics are still there, next to ours
    assert any(name.startswith("jupyterhub_") for name, _ in during)

    hub.stop_server(username)
    after = scrape_until(hub, lambda s: gpus(s, "free").get("80", 0) == free80)
    assert gpus(after, "free").get("80", 0) == free80


def test_maximum_run_time_stops_are_counted(hub, username):
    before = scrape(hub)
    hub.spawn_ready(username, {"profile": "short"})  # max_runtime 10 s
    hub.wait_stopped(username, timeout=60)
    after = scrape(hub)
    key = ("gridspawner_max_runtime_stops_total", frozenset({"backend": "local"}.items()))
    assert after.get(key, 0) - before.get(key, 0) == 1


def test_failures_that_are_not_capacity_have_their_own_outcome(make_hub, tmp_path, username):
    """A broken GPU driver, hosts that cannot be reached and a user name that cannot be an
    account are not "No capacity": the user reads the real reason, the metric counts it."""
    import subprocess

    from hubtools import FAKE_NVIDIA_SMI, default_grid_config, free_port, local_backend_config

    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (tmp_path / "known_hosts").write_text("")
    ssh = {
        "kind": "ssh",
        "hosts": [{"name": "gone", "address": "127.0.0.1", "port": free_port()}],  # nothing listens
        "client_keys": [str(key)],
        "known_hosts": str(tmp_path / "known_hosts"),
        "ledger_dir": str(tmp_path / "ledger"),
    }
    grid = default_grid_config(tmp_path)
    grid["backends"].update({
        "broken": local_backend_config(tmp_path, nvidia_smi=["env", "FAKE_NVIDIA_SMI_GPUS=!fail", str(FAKE_NVIDIA_SMI)]),
        "gone": {**ssh, "username": "gridspawner"},
        "accounts": {**ssh, "username": "{username}", "probe_username": "gridprobe"},
    })
    grid["images"]["lab"]["ssh"] = {}
    hub = make_hub(grid)
    user = f"9{username}"  # a hub name that cannot be a POSIX account (it starts with a digit)
    hub.create_user(user)
    before = scrape(hub)
    cases = [
        ("broken", "failure", "Could not start your server: cannot read the GPUs of localhost", "nvidia-smi failed"),
        ("gone", "unreachable", "Could not start your server: no host could be reached", "cannot reach gone"),
        ("accounts", "access_denied", "Could not start your server:", "cannot be an account on gone"),
    ]
    for backend, _, prefix, detail in cases:
        mark = hub.log_mark()
        r = hub.spawn(user, {"backend": backend, "image": "lab", "gpus": 1})
        if r.status_code in (201, 202):  # answered before start() failed: the reason is in the log
            hub.wait_stopped(user)
            text = hub.log_since(mark)
        else:
            text = r.text
        assert prefix in text and detail in text, (backend, r.status_code, text[-2000:])
        assert "No capacity" not in text, (backend, text[-2000:])
    after = scrape(hub)
    for backend, outcome, _, _ in cases:
        count = ("gridspawner_spawn_duration_seconds_count", frozenset({"backend": backend, "outcome": outcome}.items()))
        assert after.get(count, 0) - before.get(count, 0) == 1, (backend, outcome)
        no_capacity = ("gridspawner_spawn_duration_seconds_count",
                       frozenset({"backend": backend, "outcome": "no_capacity"}.items()))
        assert after.get(no_capacity, 0) == 0, backend
