"""GPU placement on the local backend with a fake nvidia-smi (4 GPUs of mixed VRAM):
no GPU is ever handed out twice, placement by VRAM picks the smallest card that fits,
stop releases the claim. Checked from both sides: the ledger files on the host and each
server process's CUDA_VISIBLE_DEVICES (read from /proc/PID/environ)."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from hubtools import procs

pytestmark = pytest.mark.hub

UUID_RE = re.compile(r"GPU-[0-9a-fA-F-]{8,}")


def by_size(hub) -> dict[int, list[str]]:
    """UUIDs of the fake inventory by nominal size: {80: [2 cards], 40: [1], 16: [1]}."""
    return {
        80: hub.gpu_uuids(min_mib=80000),
        40: hub.gpu_uuids(min_mib=40000, max_mib=50000),
        16: hub.gpu_uuids(max_mib=16384),
    }


def ledger_claims(hub) -> list[str]:
    """Every GPU UUID named in the ledger directory (one entry per claim, duplicates kept)."""
    ledger = hub.workdir / "ledger"
    claims = []
    if ledger.exists():
        for f in sorted(ledger.rglob("*")):
            if f.is_file() and not f.name.endswith(".lock"):
                claims += UUID_RE.findall(f.read_text(errors="replace"))
    return claims


def visible_devices(hub, user: str) -> list[str]:
    value = procs.environ(hub.server_pid(user)).get("CUDA_VISIBLE_DEVICES", "")
    return [v for v in value.split(",") if v]


def wait_ledger_empty(hub, timeout=15):
    import time

    deadline = time.monotonic() + timeout
    while ledger_claims(hub) and time.monotonic() < deadline:
        time.sleep(0.2)
    return ledger_claims(hub)


def test_six_concurrent_one_gpu_spawns_on_four_gpus(hub, username):
    all_uuids = set(hub.gpu_uuids())
    assert len(all_uuids) == 4
    users = [f"{username}x{i}" for i in range(6)]
    for u in users:
        hub.create_user(u)
    assert ledger_claims(hub) == []

    def spawn(u):
        return u, hub.spawn(u, {"backend": "local", "image": "lab", "gpus": 1})

    try:
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(spawn, users))
        accepted = [u for u, r in results if r.status_code in (201, 202)]
        refused = [(u, r) for u, r in results if r.status_code not in (201, 202)]
        for u in accepted:
            hub.wait_ready(u)
        assert len(accepted) == 4, [(u, r.status_code, r.text[:200]) for u, r in results]
        assert len(refused) == 2
        for u, r in refused:
            assert r.status_code == 503, (r.status_code, r.text)
            assert "no capacity" in r.json()["message"].lower(), r.text
            assert hub.server(u) is None
            assert not hub.server_pids(u)

        # no GPU handed out twice: ledger and the processes agree
        claims = ledger_claims(hub)
        assert sorted(claims) == sorted(all_uuids), claims
        seen = {}
        for u in accepted:
            devices = visible_devices(hub, u)
            assert len(devices) == 1, (u, devices)
            assert devices[0] not in seen, f"{devices[0]} given to {seen.get(devices[0])} and {u}"
            seen[devices[0]] = u
            assert hub.server_status(u).status_code == 200
        assert set(seen) == all_uuids
    finally:
        for u in users:
            if hub.server(u) is not None:
                hub.stop_server(u)
    assert wait_ledger_empty(hub) == []


def test_placement_by_vram_best_fit(hub, username):
    """40 GB → the 40 GB card (not an 80); 16 GB → the T4; 2 × 80 GB → both 80 GB cards."""
    sizes = by_size(hub)
    asks = [
        (f"{username}a", {"gpus": 1, "gpu_memory": 40}, sizes[40]),
        (f"{username}b", {"gpus": 1, "gpu_memory": 16}, sizes[16]),
        (f"{username}c", {"gpus": 2, "gpu_memory": 80}, sizes[80]),
    ]
    try:
        for user, options, expected in asks:
            hub.spawn_ready(user, options)
            assert sorted(visible_devices(hub, user)) == sorted(expected), (options, visible_devices(hub, user))
        assert sorted(ledger_claims(hub)) == sorted(hub.gpu_uuids())
        # everything is taken now: another GPU request is refused with a clear message
        other = f"{username}d"
        hub.create_user(other)
        r = hub.spawn(other, {"gpus": 1})
        assert r.status_code == 503 and "no capacity" in r.json()["message"].lower(), r.text
        # a CPU-only server still starts
        hub.spawn_ready(other, {"gpus": 0})
        assert visible_devices(hub, other) == [] or visible_devices(hub, other) == ["NoDevFiles"]
        hub.stop_server(other)
    finally:
        for user, _, _ in asks:
            if hub.server(user) is not None:
                hub.stop_server(user)
    assert wait_ledger_empty(hub) == []


def test_40gb_request_takes_an_80_when_the_40_is_busy(hub, username):
    first, second = f"{username}a", f"{username}b"
    sizes = by_size(hub)
    try:
        hub.spawn_ready(first, {"gpus": 1, "gpu_memory": 40})
        assert visible_devices(hub, first) == sizes[40]
        hub.spawn_ready(second, {"gpus": 1, "gpu_memory": 40})
        assert visible_devices(hub, second)[0] in sizes[80]
    finally:
        for u in (first, second):
            if hub.server(u) is not None:
                hub.stop_server(u)


def test_stop_releases_gpus(hub, username):
    hub.spawn_ready(username, {"gpus": 1, "gpu_memory": 80})
    (device,) = visible_devices(hub, username)
    assert ledger_claims(hub) == [device]
    hub.stop_server(username)
    assert wait_ledger_empty(hub) == []
    # the same card can be had again
    hub.spawn_ready(username, {"gpus": 2, "gpu_memory": 80})
    try:
        assert device in visible_devices(hub, username)
    finally:
        hub.stop_server(username)
    assert wait_ledger_empty(hub) == []
