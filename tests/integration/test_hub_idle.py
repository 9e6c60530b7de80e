"""The idle policy on a real hub: a GPU server with no Jupyter activity and an unused GPU is
stopped (record: ``idle``), while one whose kernel keeps its GPU busy — no browser open —
is kept, until its GPU goes quiet too. GPU use comes from the fake nvidia-smi's per-process
readings, read with the capacity probe."""

from __future__ import annotations

import time

import pytest

from hubtools import Hub, default_grid_config, procs
from hubtools.usage import records, wait_for

pytestmark = pytest.mark.hub

IDLE = 10  # seconds


@pytest.fixture
def idle_hub(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hub")
    grid = default_grid_config(workdir)
    grid.update({
        "idle_timeout_per_backend": {"local": IDLE},
        "quota_check_interval": 1,
        "capacity_refresh_interval": 1,
    })
    with Hub(grid, workdir=workdir) as hub:
        yield hub
    assert not hub.leftover_pids()


def start_kernel(hub: Hub, user: str) -> int:
    """Start a kernel in ``user``'s server through its REST API (no browser); its PID."""
    before = set(procs.pids())
    r = hub.session.post(f"{hub.url}/user/{user}/api/kernels", json={"name": "python3"}, timeout=60)
    assert r.status_code == 201, (r.status_code, r.text[:300])
    server = hub.server_pid(user)

    def kernel():
        new = [p for p in set(procs.pids()) - before
               if any("ipykernel" in a for a in procs.cmdline(p)) and procs.environ(p).get("JUPYTERHUB_USER") == user]
        return new[0] if new else None

    pid = wait_for(kernel, 30, "the kernel process")
    assert server != pid
    return pid


def gpu_of(hub: Hub, user: str) -> str:
    """The UUID of the (one) GPU given to ``user``'s server."""
    env = procs.environ(hub.server_pid(user))
    visible = env["CUDA_VISIBLE_DEVICES"].split(",")[0]
    if visible.startswith("GPU-"):
        return visible
    return {str(i): u for i, u, _, _ in hub.gpus()}[visible]


def test_idle_gpu_server_stopped_busy_one_without_browser_kept(idle_hub, username):
    hub = idle_hub
    idle_user, busy_user = f"{username}i", f"{username}b"
    hub.spawn_ready(idle_user, {"gpus": 1})
    started = time.monotonic()  # the idle server's last Jupyter activity: its start
    hub.spawn_ready(busy_user, {"gpus": 1})
    idle_pid = hub.server_pid(idle_user)
    kernel = start_kernel(hub, busy_user)
    # the busy server's kernel runs at 90 % on its GPU (nvidia-smi's per-process view)
    apps = hub.inventory_file.with_name(hub.inventory_file.name + ".apps")
    apps.write_text(f"{gpu_of(hub, busy_user)}, {kernel}, 3000, 90\n")

    hub.wait_stopped(idle_user, timeout=IDLE + 30)
    assert time.monotonic() - started >= IDLE - 3
    assert not procs.alive(idle_pid)
    [rec] = wait_for(lambda: [r for r in records(hub, idle_user) if r["stopped_at"]], 10, "idle record")
    assert rec["stop_reason"] == "idle"
    assert "stopping it (idle timeout" in hub.log()

    # the busy one outlives its idle timeout many times over, browser or not
    time.sleep(IDLE)
    assert hub.server(busy_user)["ready"], hub.log()[-3000:]
    assert records(hub, busy_user)[-1]["stopped_at"] is None

    # its GPU goes quiet (the kernel still holds memory, at 0 %): idle from then on
    apps.write_text(f"{gpu_of(hub, busy_user)}, {kernel}, 3000, 0\n")
    quiet = time.monotonic()
    hub.wait_stopped(busy_user, timeout=IDLE + 30)
    assert time.monotonic() - quiet >= IDLE - 3
    assert records(hub, busy_user)[-1]["stop_reason"] == "idle"
