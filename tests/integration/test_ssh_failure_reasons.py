"""Failures that are not capacity are not reported as "No capacity": a refused key, a user
name that cannot be an account, hosts that cannot be reached — each gets its own error kind
(and so its own ``outcome`` in the spawn metric). "No capacity" only when hosts answered and
nothing free fits, naming the hosts that did not answer too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sshhosts import available  # noqa: E402
from sshhosts.backend_env import context, env_fixture, lab_fixture, launch, request, smi, stop  # noqa: E402

from gridspawner.backends.base import AccessDenied, BackendError, NoCapacity, Unreachable  # noqa: E402

pytestmark = pytest.mark.skipif(available() is not None, reason=available() or "")

ONE_T4 = "Tesla T4,15360"


lab = lab_fixture("a", "b")
env = env_fixture("gsfail-")


async def refused(backend, **kw) -> BackendError:
    with pytest.raises(BackendError) as e:
        await backend.launch(context(**kw), request(1))
    return e.value


async def test_a_refused_key_is_access_denied(env):
    stranger = env.root / "stranger_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    backend = env.backend(("a", "b"), client_keys=[str(stranger)])
    err = await refused(backend)
    assert type(err) is AccessDenied and err.outcome == "access_denied", repr(err)
    assert "cannot log in to a" in str(err) and "cannot log in to b" in str(err) and "key was refused" in str(err)


async def test_a_user_name_that_cannot_be_an_account_is_access_denied(env):
    backend = env.backend(("a", "b"), username="{username}", probe_username="root")
    err = await refused(backend, user="9lives")
    assert type(err) is AccessDenied, repr(err)
    assert "'9lives' cannot be an account on a" in str(err)


async def test_hosts_that_cannot_be_reached_are_unreachable(env, lab):
    a = lab.hosts["a"]
    lab.stop_sshd(a)  # connection refused
    lab.go_dark(lab.hosts["b"])  # no answer at all
    try:
        backend = env.backend(("a", "b"), connect_timeout=2)
        err = await refused(backend)
        assert type(err) is Unreachable and err.outcome == "unreachable", repr(err)
        assert str(err).startswith("no host could be reached: ")
        assert "cannot reach a" in str(err) and "cannot reach b" in str(err) and "timed out" in str(err)
        # a server without GPUs: the same
        with pytest.raises(Unreachable):
            await backend.launch(context(user="cpuonly"), request(0))
    finally:
        lab.light_up(lab.hosts["b"])
        lab.start_sshd(a)


async def test_no_capacity_when_a_host_answered_and_nothing_fits(env, lab):
    hosts = [env.host("a", nvidia_smi=smi("a", ONE_T4)), env.host("b", nvidia_smi=smi("b", ONE_T4))]
    backend = env.backend(hosts, connect_timeout=2)
    r = await launch(env, backend, context(user="fits"), request(1))
    other = lab.hosts["b" if r.state["host"] == "a" else "a"]
    lab.go_dark(other)
    try:
        err = await refused(backend, user="nofit")  # one host is full, the other does not answer
        assert type(err) is NoCapacity, repr(err)
        assert f"1 GPU requested, 0 free on {r.state['host']}" in str(err)
        assert f"{other.name} timed out" in str(err), err
    finally:
        lab.light_up(other)
    await stop(env, backend, r)
