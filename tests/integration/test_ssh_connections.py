"""Pooled SSH connections are closed when idle: with one remote account per hub user
(``username: "{username}"``) the hub must not keep a connection per host for every user who
ever spawned — only for the servers running now and for the background probe account.

Real accounts (useradd) log in to a lab host with the lab key; the server is
tests/fixtures/host_sock_server.py run by the system python (the venv lives under /root,
which other accounts cannot enter).
"""

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

from relayhttp import http_get  # noqa: E402
from sshhosts import available  # noqa: E402
from sshhosts.accounts import unix_accounts  # noqa: E402
from sshhosts.backend_env import SERVER, Env, context, env_fixture, image, lab_fixture, launch, request, stop  # noqa: E402

pytestmark = pytest.mark.skipif(available() is not None, reason=available() or "")

IDLE = 1.0  # connection_idle_timeout of these tests (the reaper looks every IDLE / 2)


lab = lab_fixture("a", accounts=True)
env = env_fixture("gsconn-")


def accounts_backend(env: Env):
    return env.backend(
        ("a",), username="{username}", probe_username="root", connection_idle_timeout=IDLE,
        notebook_dir="~/nb", ledger_dir=f"/tmp/gsconn-ledger-{os.getpid()}",
    )


@contextlib.contextmanager
def session_roots(env: Env, accounts):
    """Remove the accounts' session roots afterwards (each account makes its own)."""
    try:
        yield
    finally:
        for a in accounts:
            shutil.rmtree(env.session_root.replace("{account}", a), ignore_errors=True)


def open_accounts(backend) -> set[str]:
    return {t.target.username for t in backend.pool.transports() if t.connected}


async def probing(backend, seconds: float) -> None:
    """The background capacity probe (as the probe account), every IDLE / 2 for ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await backend.probe_capacity()
        await asyncio.sleep(IDLE / 2)


async def test_idle_connections_close_and_a_servers_connection_stays(env, lab):
    host = lab.hosts["a"]
    tag = os.getpid() % 10000
    with unix_accounts(f"gsia{tag}", f"gsib{tag}", f"gsic{tag}") as users, session_roots(env, users):
        backend = accounts_backend(env)
        img = image(cmd=["/usr/bin/python3", SERVER])
        servers = {u: await launch(env, backend, context(user=u), request(img=img)) for u in users}
        await backend.probe_capacity()
        assert open_accounts(backend) == {*users, "root"}
        assert len(lab.session_pids(host)) == 4  # sshd's side agrees: four connections

        keep, *done = users
        for u in done:
            await stop(env, backend, servers.pop(u))
        await probing(backend, 3 * IDLE)  # the probe account stays busy; the others idle
        # the stopped users' connections are closed; the running server's and the probe's stay
        assert open_accounts(backend) == {keep, "root"}
        assert len(lab.session_pids(host)) == 2
        assert backend.pool.idle_closed == 2
        # the running server is still reachable through its relay, its poll on its connection
        before = backend.handshakes
        assert (await http_get(servers[keep].url))[0] == 200
        assert await backend.poll(servers[keep]) is None
        assert backend.handshakes == before

        # a stopped user who spawns again gets a connection again
        again = await launch(env, backend, context(user=done[0]), request(img=img))
        assert done[0] in open_accounts(backend)
        await stop(env, backend, again)

        await stop(env, backend, servers.pop(keep))
        await asyncio.sleep(3 * IDLE)  # nothing running, no probe due: everything closes
        assert open_accounts(backend) == set()
        assert lab.session_pids(host) == []
