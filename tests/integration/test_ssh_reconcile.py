"""Crash recovery on SSH hosts, driven on the backend (no hub; `Backend.reconcile` is what the
hub's reconciler calls): two hubs sharing a host, its account, session root and GPU ledger
each reclaim only their own orphans — and a user of the same name on both hubs gets two
sessions, never one the other hub stops; with one account per hub user, what a crashed
launch left is found and reclaimed as that user's account: a GPU server through the ledger
the probe lists, a server without GPUs through JupyterHub's word that the launch was cut
short (`note_cut_short`), since the probe account cannot read other accounts' sessions."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gridspawner.backends.base import NoCapacity  # noqa: E402
from gridspawner.hub_identity import session_slug  # noqa: E402
from relayhttp import http_get  # noqa: E402
from sshhosts import available  # noqa: E402
from sshhosts.accounts import unix_accounts  # noqa: E402
from sshhosts.backend_env import (  # noqa: E402
    FOUR_T4, SERVER, alive, context, env_fixture, image, lab_fixture, launch, request, smi, stop,
)

pytestmark = pytest.mark.skipif(available() is not None, reason=available() or "")

lab = lab_fixture("a", accounts=True)
env = env_fixture("gsrec-")


def hub_context(hub: str, user: str, server: str = ""):
    ctx = context(user=user, server=server)
    return type(ctx)(**{**ctx.__dict__, "slug": session_slug(hub, user, server)})


async def wait_gone(pid: int, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still runs"
        await asyncio.sleep(0.1)


async def test_two_hubs_on_one_host_each_reclaim_only_their_own(env):
    hosts = [env.host("a", nvidia_smi=smi("a", FOUR_T4))]
    hub_a, hub_b = env.backend(hosts), env.backend(hosts)
    hub_a.hub_id, hub_b.hub_id = "hub-a", "hub-b"
    a_gpu = await launch(env, hub_a, hub_context("hub-a", "alice"), request(1))
    a_cpu = await launch(env, hub_a, hub_context("hub-a", "bob"), request(0))
    # alice on hub B too: her own session next to hub A's, not the same one stopped and replaced
    b_gpu = await launch(env, hub_b, hub_context("hub-b", "alice"), request(1))
    assert a_gpu.state["session_dir"] != b_gpu.state["session_dir"] and alive(a_gpu.state["pid"])
    # hub B knows its server: finds nothing of its own to reclaim, and leaves hub A's alone
    report = await hub_b.reconcile(lambda: [b_gpu.state], 0)
    assert (report.reclaimed, report.errors) == ([], [])
    # hub A crashed and forgot both its servers: reclaims them, and nothing of hub B's
    report = await hub_a.reconcile(lambda: [], 0)
    assert sorted(line.split()[0] for line in report.reclaimed) == sorted(
        [a_gpu.state["session_dir"], a_cpu.state["session_dir"]]), report
    assert report.freed_claims == 1
    for gone in (a_gpu, a_cpu):
        await wait_gone(gone.state["pid"])
        assert not Path(gone.state["session_dir"]).exists()
        env.launches.remove(gone)
    assert alive(b_gpu.state["pid"]) and (await http_get(b_gpu.url))[0] == 200
    assert [text for text in env.ledger().values() if "hub=hub-b" in text] and len(env.ledger()) == 1
    await stop(env, hub_b, b_gpu)


@contextlib.contextmanager
def shared_ledger(path: str):
    """A ledger several accounts share: root's, 1777 (as the admin guide says)."""
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def test_with_one_account_per_user_a_crashed_launch_is_reclaimed_as_that_account(env):
    tag = os.getpid() % 10000
    with unix_accounts(f"gsra{tag}", f"gsrb{tag}") as (gpu_user, cpu_user), \
            shared_ledger(f"/tmp/gsrec-ledger-{tag}") as ledger_dir:
        try:
            backend = env.backend([env.host("a", nvidia_smi=smi("a", FOUR_T4))], username="{username}",
                                  probe_username="root", notebook_dir="~/nb", ledger_dir=ledger_dir)
            backend.hub_id = "hub-a"
            img = image(cmd=["/usr/bin/python3", SERVER])
            gpu = await launch(env, backend, hub_context("hub-a", gpu_user), request(1, img=img))
            cpu = await launch(env, backend, hub_context("hub-a", cpu_user), request(0, img=img))
            await backend.probe_capacity()  # as root: it lists every claim, but no other account's sessions
            # the hub crashed mid-launch of both: its database has no state for either
            report = await backend.reconcile(lambda: [], 0, probe_max_age=60)
            assert [line.split()[0] for line in report.reclaimed] == [gpu.state["session_dir"]], report
            assert f"account {gpu_user}" in report.reclaimed[0] and report.freed_claims == 1
            assert alive(cpu.state["pid"])  # not seen: not touched
            # JupyterHub polled the cpu server at start-up and had no launch state for it
            backend.note_cut_short(cpu_user, "", session_slug("hub-a", cpu_user, ""))
            report = await backend.reconcile(lambda: [], 0, probe_max_age=60)
            assert [line.split()[0] for line in report.reclaimed] == [cpu.state["session_dir"]], report
            assert "its launch was cut short" in report.reclaimed[0]
            for done in (gpu, cpu):
                await wait_gone(done.state["pid"])
                assert not Path(done.state["session_dir"]).exists()
                env.launches.remove(done)
            assert os.listdir(ledger_dir) == []
            # nothing left to look for: the next look runs no script as any user
            report = await backend.reconcile(lambda: [], 0, probe_max_age=60)
            assert (report.reclaimed, report.kept, backend._cut_short) == ([], [], {})
        finally:
            for account in (gpu_user, cpu_user):
                shutil.rmtree(env.session_root.replace("{account}", account), ignore_errors=True)


async def test_a_gpu_whose_process_still_runs_is_never_freed(env):
    backend = env.backend([env.host("a", nvidia_smi=smi("a", FOUR_T4))])
    backend.hub_id = "hub-a"
    server = await launch(env, backend, hub_context("hub-a", "carol"), request(1))
    pid = server.state["pid"]
    env.launches.remove(server)
    try:
        shutil.rmtree(server.state["session_dir"])  # e.g. a /tmp cleaner, while the hub was down
        report = await backend.reconcile(lambda: [], 0)
        assert report.reclaimed == [] and "a process still holds" in report.kept[0], report
        assert alive(pid) and len(env.ledger()) == 1
        os.killpg(pid, 9)
        await wait_gone(pid)
        report = await backend.reconcile(lambda: [], 0)  # its holder is gone now: freed
        assert report.freed_claims == 1 and env.ledger() == {}, report
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, 9)


async def test_the_next_spawn_after_a_crash_replaces_the_lost_server_even_on_a_full_host(env):
    """The host has one GPU, held by alice's server that a crashed hub lost. Her next spawn
    (the restarted hub: a new backend with the same hub id) does not count it as taken: it
    stops the lost server and takes its place, without waiting for orphan_grace."""
    hosts = [env.host("a", nvidia_smi=smi("a", "Tesla T4,15360"))]
    before_crash, after_restart = env.backend(hosts), env.backend(hosts)
    before_crash.hub_id = after_restart.hub_id = "hub-a"
    lost = await launch(env, before_crash, hub_context("hub-a", "alice"), request(1))
    env.launches.remove(lost)
    again = await launch(env, after_restart, hub_context("hub-a", "alice"), request(1))
    assert again.state["session_dir"] == lost.state["session_dir"] and again.gpus == lost.gpus
    await wait_gone(lost.state["pid"])
    assert len(env.ledger()) == 1 and (await http_get(again.url))[0] == 200
    # another user still finds the GPU taken
    with pytest.raises(NoCapacity):
        await after_restart.launch(hub_context("hub-a", "bob"), request(1))
    await stop(env, after_restart, again)
