"""A host whose network goes silently dark (its link goes down inside its namespace: packets
are lost, nothing is refused or reset; sshd and the server keep running).

Every SSH operation on it must give up within ``connect_timeout`` (here 2 s) and say the host
timed out — not wait for the keepalive to notice (15 s × 3) — and spawns must not wait for it
beyond its probe: the first spawn after it went dark waits one ``connect_timeout``, later ones
not at all. Each test prints how long each operation took to give up.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relayhttp import http_get  # noqa: E402
from sshhosts import SSHLab, available  # noqa: E402
from sshhosts.backend_env import Env, context, env_fixture, lab_fixture, launch, request, smi, stop  # noqa: E402

from gridspawner.backends.base import BackendError, Unreachable  # noqa: E402
from gridspawner.backends.host.transport import HostUnreachable, TransportError  # noqa: E402
from gridspawner.backends.host.placement import HostLogin  # noqa: E402

pytestmark = pytest.mark.skipif(available() is not None, reason=available() or "")

CONNECT_TIMEOUT = 2
#: what one operation may take beyond connect_timeout on this busy 2-core machine
SLACK = 1.5
TWO_T4 = "Tesla T4,15360;Tesla T4,15360"


lab = lab_fixture("a", "b")
env = env_fixture("gsdark-")


def dark_backend(env: Env, connect_timeout: float = CONNECT_TIMEOUT):
    """Hosts b then a (a server without GPUs goes to b, the first that answers), two T4s each."""
    hosts = [env.host("b", nvidia_smi=smi("b", TWO_T4)), env.host("a", nvidia_smi=smi("a", TWO_T4))]
    return env.backend(hosts, connect_timeout=connect_timeout, command_timeout=30)


async def gives_up(what: str, operation, timings: dict) -> BaseException:
    """Run ``operation()``; it must fail: returns the error and records how long it took."""
    t0 = time.monotonic()
    try:
        await operation()
    except Exception as e:  # noqa: BLE001 — the error is the result
        timings[what] = time.monotonic() - t0
        return e
    raise AssertionError(f"{what} succeeded on a dark host")


async def back_online(lab: SSHLab, host, transport) -> None:
    """Light the host up again and wait until its (new) connection answers."""
    lab.light_up(host)
    deadline = time.monotonic() + 30
    while True:
        try:
            await transport.run("true", 5)
            return
        except (TransportError, asyncio.TimeoutError):
            assert time.monotonic() < deadline, "the host did not answer again"
            await asyncio.sleep(0.3)


async def test_every_operation_on_a_dark_host_times_out_within_connect_timeout(env, lab):
    backend = dark_backend(env)
    r = await launch(env, backend, context(user="darkops"), request())
    assert r.state["host"] == "b"
    b = lab.hosts["b"]
    transport = backend.ssh_transport(HostLogin("b", "root"))
    timings: dict[str, float] = {}

    async def relay_get():
        await http_get(r.url, timeout=60)

    operations = [
        ("a script (session open)", lambda: transport.run("echo hi", 30)),
        ("a channel to the server (relay)", relay_get),
        ("SFTP", lambda: transport.sftp_put({"f": b"x"}, str(env.root / "sftp"), 30)),
        ("the hub API tunnel", lambda: transport.reverse_forward("127.0.0.1", 10, holder="probe-only")),
    ]
    for what, operation in operations:
        lab.go_dark(b)
        err = await gives_up(what, operation, timings)
        if what != "a channel to the server (relay)":  # the relay just closes the client's connection
            assert isinstance(err, HostUnreachable), (what, err)
            assert "b timed out: no answer within 2 s" in str(err), (what, err)
        await back_online(lab, b, transport)

    # a new connection
    lab.go_dark(b)
    await transport.close_idle()
    err = await gives_up("connecting", transport.connection, timings)
    assert isinstance(err, HostUnreachable) and "timed out" in str(err), err
    # while the host does not answer, further attempts fail at once
    err = await gives_up("connecting again (host known dark)", transport.connection, timings)
    assert isinstance(err, HostUnreachable)
    # the server counts as running while its host is unreachable (down_grace), and its
    # poll says why without waiting
    t0 = time.monotonic()
    assert await backend.poll(r) is None
    timings["poll (host known dark)"] = time.monotonic() - t0
    # the background capacity probe names the host as timed out
    t0 = time.monotonic()
    cap = await backend.probe_capacity()
    timings["capacity probe"] = time.monotonic() - t0
    hb, ha = cap.hosts
    assert ha.reachable and not hb.reachable and "timed out" in hb.error, hb.error

    print("\ngave up after (s): " + ", ".join(f"{k}: {v:.2f}" for k, v in timings.items()))
    for what, took in timings.items():
        assert took < CONNECT_TIMEOUT + SLACK, (what, took, timings)
    assert timings["connecting again (host known dark)"] < 0.5
    await back_online(lab, b, transport)
    await stop(env, backend, r)


async def test_spawns_do_not_wait_for_a_dark_host(env, lab):
    # a longer connect_timeout than above, so "did not wait for it" stands out from a spawn's
    # own time on this busy machine
    wait = 5
    backend = dark_backend(env, connect_timeout=wait)
    b = lab.hosts["b"]
    # both hosts answer: a GPU spawn (best fit ties: b first, in config order)
    t0 = time.monotonic()
    first = await launch(env, backend, context(user="dark0"), request(1))
    normal = time.monotonic() - t0
    assert first.state["host"] == "b"
    await stop(env, backend, first)

    lab.go_dark(b)  # with b's pooled connections open
    took = []
    for i in range(3):
        t0 = time.monotonic()
        r = await launch(env, backend, context(user=f"dark{i + 1}"), request(1))
        took.append(time.monotonic() - t0)
        assert r.state["host"] == "a"
        await stop(env, backend, r)
        if i == 1:  # let b's back-off run out: the next spawn's attempt on b goes on in the background
            await asyncio.sleep(backend.pool.retry_max)
    print(f"\nspawn with both hosts answering {normal:.2f} s; with b dark: "
          + ", ".join(f"{t:.2f}" for t in took) + " s")
    # the first spawn waits for b's probe at most connect_timeout; the next ones not at all
    assert took[0] < normal + wait + SLACK, (normal, took)
    assert took[1] < wait - 1 and took[2] < wait - 1, (normal, took)

    # a host chosen by placement alone: when b is the only host, the spawn fails at once and
    # says why — not "No capacity"
    only_b = env.backend([env.host("b", nvidia_smi=smi("b", TWO_T4))], connect_timeout=CONNECT_TIMEOUT)
    t0 = time.monotonic()
    with pytest.raises(BackendError) as e:
        await only_b.launch(context(user="dark9"), request(1))
    assert time.monotonic() - t0 < CONNECT_TIMEOUT + SLACK
    assert isinstance(e.value, Unreachable), e.value
    assert "no host could be reached" in str(e.value) and "timed out" in str(e.value), e.value
