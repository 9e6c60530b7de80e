"""SSHBackend driven directly (no hub) against real sshd hosts in network namespaces.

Hosts (tests/sshhosts): ``a`` and ``b`` reachable directly, ``c`` only through the gateway
``gate``; settings, requests and contexts come from `sshhosts.backend_env`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relayhttp import http_get  # noqa: E402
from sshhosts import available  # noqa: E402
from sshhosts.backend_env import (  # noqa: E402
    FAKE_APPTAINER, FOUR_T4, SERVER, TOKEN, Env, alive, context, env_fixture, image, lab_fixture, launch,
    processes_with, request, smi, stop, wait_http,
)

from gridspawner.backends.base import BackendError, NoCapacity  # noqa: E402
from gridspawner.backends.ssh import SSHBackend  # noqa: E402
from gridspawner.catalog import build_catalog  # noqa: E402
from gridspawner.request import OptionsError, build_request  # noqa: E402

pytestmark = pytest.mark.skipif(available() is not None, reason=available() or "")


lab = lab_fixture("a", "b", "gate", ("c", "gate"))
env = env_fixture("gssh-")


# --------------------------------------------------------------------------------- tests


async def test_launch_through_jump_host_isolates_gpus_and_keeps_secrets(env, lab):
    backend = env.backend()
    messages: list[str] = []
    result = await launch(env, backend, context(messages=messages), request(1, 80))
    st = result.state
    assert st["host"] == "c"  # only c's H100s and a's A100-80 qualify; the H100 (81559 MiB) is the best fit
    assert result.gpus[0].name == "NVIDIA H100 80GB HBM3"
    status, body = await http_get(result.url)
    assert status == 200
    info = json.loads(body)
    assert info["cuda_visible_devices"] == result.gpus[0].uuid
    assert info["token_sha256"] == hashlib.sha256(TOKEN.encode()).hexdigest()
    assert info["pid"] == info["pgid"] == info["sid"] == st["pid"]  # its own session / process group
    # the server runs inside c's network namespace (reached only through the gateway)
    assert st["pid"] in lab.hosts["c"].pids()
    # the token: never in any argv on this machine (all hosts share its process table) …
    assert processes_with(TOKEN) == []
    # … nor in a file anyone else may read
    for top in (Path(st["session_dir"]).parent, env.root):
        for dirpath, _, files in os.walk(top):
            for f in files:
                p = Path(dirpath) / f
                try:
                    mode = p.stat().st_mode
                    if stat.S_ISREG(mode) and mode & 0o077:
                        assert TOKEN not in p.read_text(errors="replace"), p
                except FileNotFoundError:
                    pass
    sdir = Path(st["session_dir"])
    assert stat.S_IMODE(sdir.stat().st_mode) == 0o700
    assert stat.S_IMODE(sdir.parent.stat().st_mode) == 0o700
    # the ledger holds the claim, with the pid
    (entry,) = env.ledger().values()
    assert f"uuid={result.gpus[0].uuid}" in entry and entry.splitlines()[-1].startswith(f"hold={st['pid']} ")
    await stop(env, backend, result)
    assert not sdir.exists() and env.ledger() == {} and not alive(st["pid"])


async def test_best_fit_across_hosts_by_vram(env):
    backend = env.backend()
    cases = [(16, "a", "Tesla T4"), (24, "b", "NVIDIA A10"), (40, "b", "NVIDIA A100-PCIE-40GB"), (0, "a", "Tesla T4")]
    for i, (gb, host, name) in enumerate(cases):
        r = await launch(env, backend, context(user=f"fit{i}"), request(1, gb))
        assert (r.state["host"], r.gpus[0].name) == (host, name), (gb, r.state["host"], r.gpus)
        await stop(env, backend, r)
    # two GPUs of ≥ 80 GB exist together only on c
    r = await launch(env, backend, context(user="fit9"), request(2, 80))
    assert r.state["host"] == "c" and len(r.gpus) == 2
    await stop(env, backend, r)
    with pytest.raises(NoCapacity) as e:
        await backend.launch(context(user="fit10"), request(3, 0))
    assert "3 GPUs requested" in str(e.value)


async def test_ten_concurrent_spawns_on_two_hosts_with_four_gpus(env):
    hosts = [env.host("a", nvidia_smi=smi("a", FOUR_T4)), env.host("b", nvidia_smi=smi("b", FOUR_T4))]
    backends = [env.backend(hosts), env.backend(hosts)]  # two hubs sharing the hosts' ledger
    results = await asyncio.gather(
        *(backends[i % 2].launch(context(user=f"conc{i}"), request(1)) for i in range(10)), return_exceptions=True
    )
    ok = [r for r in results if not isinstance(r, BaseException)]
    env.launches.extend(ok)
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(ok) == 8, results
    assert len(failed) == 2 and all(isinstance(f, NoCapacity) for f in failed), failed
    for f in failed:
        assert "1 GPU requested, 0 free on" in str(f)
    uuids = [u for r in ok for u in (g.uuid for g in r.gpus)]
    assert len(set(uuids)) == 8
    ledger_uuids = [line[5:] for text in env.ledger().values() for line in text.splitlines() if line.startswith("uuid=")]
    assert sorted(ledger_uuids) == sorted(uuids)  # the ledger agrees: 8 claims, none twice
    assert {r.state["host"] for r in ok} == {"a", "b"}
    for r in ok:
        assert (await http_get(r.url))[0] == 200
    for i, r in enumerate(ok):
        await stop(env, backends[i % 2], r)
    assert env.ledger() == {}


async def test_dropped_connection_reconnects_on_the_same_port(env, lab):
    hub = await asyncio.start_server(_hub_handler, "127.0.0.1", 0)  # stands in for the hub's API
    hub_port = hub.sockets[0].getsockname()[1]
    try:
        backend = env.backend(("a",))
        result = await launch(env, backend, context(api_url=f"http://127.0.0.1:{hub_port}/hub/api"), request())
        st = result.state
        api_port = st["api_port"]
        assert api_port and st["api_dest"] == ["127.0.0.1", hub_port]
        host = lab.hosts["a"]
        assert await _hub_via_tunnel(host, api_port) == "hub says hi"
        before = backend.handshakes
        assert lab.drop_connections(host)  # kill the sshd session processes of our connection
        t = await wait_http(result.url, within=15)
        assert backend.handshakes == before + 1
        assert alive(st["pid"])  # the server survived the SSH session ending
        status, body = await http_get(result.url)
        assert json.loads(body)["pid"] == st["pid"]
        # the reverse tunnel to the hub is back on the same remote port
        deadline = time.monotonic() + 10
        while await _hub_via_tunnel(host, api_port) != "hub says hi":
            assert time.monotonic() < deadline, "hub API tunnel not restored"
            await asyncio.sleep(0.2)
        print(f"reachable again {t:.2f} s after the connection dropped")
        assert await backend.poll(result) is None
        await stop(env, backend, result)
    finally:
        hub.close()


async def _hub_handler(reader, writer):
    await reader.read(100)
    writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 11\r\n\r\nhub says hi")
    await writer.drain()
    writer.close()


async def _hub_via_tunnel(host, port: int) -> str:
    """GET the hub API from inside ``host``'s namespace (its loopback: the reverse tunnel)."""
    code = (
        "import urllib.request,sys\n"
        f"print(urllib.request.urlopen('http://127.0.0.1:{port}/hub/api', timeout=5).read().decode())"
    )
    r = await asyncio.to_thread(host.exec, sys.executable, "-c", code, check=False)
    return r.stdout.strip()


async def test_restore_from_state_in_a_new_backend(env):
    first = env.backend()
    ra = await launch(env, first, context(user="rest1"), request(1, 16))
    rc = await launch(env, first, context(user="rest2"), request(1, 80))
    assert {ra.state["host"], rc.state["host"]} == {"a", "c"}
    states = [dict(ra.state), dict(rc.state)]
    await first.close()  # the hub goes away: relays and connections close, servers keep running
    for st in states:
        assert alive(st["pid"])
    with pytest.raises((OSError, ConnectionError, asyncio.TimeoutError, IndexError, ValueError)):
        await http_get(ra.url, timeout=2)
    second = env.backend()  # the restarted hub
    env.backends.remove(first)
    restored = [await second.restore(st) for st in states]
    for old, new in zip((ra, rc), restored):
        assert new.url == old.url  # the same port: the proxy's routes stay valid
        await wait_http(new.url, within=10)
        assert await second.poll(new) is None
    env.launches[:] = restored
    for r in restored:
        await stop(env, second, r)
    assert env.ledger() == {}


async def test_wrong_host_key_is_refused_naming_the_host(env, lab):
    host = lab.hosts["b"]
    other = env.root / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    lab.trust(host, other)
    try:
        backend = env.backend(("b",))
        cap = await backend.probe_capacity()
        (hc,) = cap.hosts
        assert not hc.reachable
        assert "refusing to connect to b" in hc.error and "host key is not trusted" in hc.error
        assert cap.summary() == "no host reachable now"
        with pytest.raises(BackendError) as e:
            await backend.launch(context(user="wrongkey"), request(1))
        assert "refusing to connect to b" in str(e.value)
        assert backend.handshakes == 0
    finally:
        lab.trust(host)
    assert env.ledger() == {}


async def test_unknown_host_key_is_refused(env, lab):
    kh = env.root / "empty_known_hosts"
    kh.write_text("")
    backend = env.backend(("a",), known_hosts=str(kh))
    with pytest.raises(BackendError) as e:
        await backend.launch(context(user="unknownkey"), request())
    assert "refusing to connect to a" in str(e.value) and str(kh) in str(e.value)


async def test_unreachable_hosts_fail_within_the_connect_timeout(env, lab):
    silent, _ = lab.add_silent_host(f"hung{os.getpid() % 1000}")
    down = lab.hosts["gate"]
    try:
        backend = env.backend(
            [{"name": "hung", "address": silent.address, "nvidia_smi": smi("a")}, env.host("a")],
            connect_timeout=2,
        )
        t0 = time.monotonic()
        cap = await backend.probe_capacity()
        took = time.monotonic() - t0
        hung, a = cap.hosts
        assert not hung.reachable and "no answer within 2 s" in hung.error and a.reachable
        assert took < 5
        assert cap.summary().endswith("(1 host unreachable)")
        # a launch places on the host that answers
        r = await launch(env, backend, context(user="unreach"), request(1))
        assert r.state["host"] == "a"
        await stop(env, backend, r)
        # a host whose sshd is down: refused at once
        lab.stop_sshd(down)
        only_down = env.backend([env.host("gate", nvidia_smi=smi("a"))])
        t0 = time.monotonic()
        with pytest.raises(BackendError) as e:
            await only_down.launch(context(user="unreach2"), request())
        assert time.monotonic() - t0 < 5
        assert "cannot reach gate" in str(e.value)
    finally:
        if down.sshd.poll() is not None:
            lab.start_sshd(down)
    assert env.ledger() == {}
    assert not env.session_dir("unreach2").exists()


async def test_failed_spawn_leaves_nothing_behind(env):
    backend = env.backend(("a",))
    ctx = context(user="dies")
    with pytest.raises(BackendError) as e:
        await backend.launch(ctx, request(1, 0, "--exit=3"))
    assert "exited during start-up" in str(e.value) and "exiting with status 3" in str(e.value)
    assert env.ledger() == {}
    assert not env.session_dir(ctx.slug).exists()
    assert processes_with(env.session_root.replace("{account}", "root") + "/") == []


async def test_poll_grace_then_stopped_and_reaped_when_the_host_is_back(env, lab):
    backend = env.backend(("b",), down_grace=2)
    host = lab.hosts["b"]
    r = await launch(env, backend, context(user="grace"), request(1))
    pid = r.state["pid"]
    sessions = lab.session_pids(host)
    lab.stop_sshd(host)
    try:
        for p in sessions:  # drop the live connection too: the host is now unreachable
            os.kill(p, 9)
        await asyncio.sleep(0.3)
        assert await backend.poll(r) is None  # within the grace period: still running
        await asyncio.sleep(2.2)
        assert await backend.poll(r) == 1  # declared stopped after down_grace
        assert alive(pid)  # (it still runs on the host; nothing could reach it)
    finally:
        lab.start_sshd(host)
    # the host answers again (after the transport's retry back-off): the next probe stops
    # the abandoned server and frees its GPU
    deadline = time.monotonic() + 25
    while alive(pid) or env.ledger():
        assert time.monotonic() < deadline, "abandoned server not reaped"
        await backend.probe_capacity()
        await asyncio.sleep(0.5)
    env.launches.remove(r)


async def test_injection_canaries_are_never_executed(env, lab):
    canary = env.root / "canary"
    payloads = [
        f"$(touch {canary}1)",
        f"`touch {canary}2`",
        f"'; touch {canary}3; echo '",
        f"\"; touch {canary}4; echo \"",
        f"x\ntouch {canary}5\n",
        f"$(touch {canary}6)&&|;<>*?~{{}}[]!#",
    ]
    backend = env.backend(("a",))
    user = f"inj$(touch {canary}0)"
    ctx = context(user=user, server=payloads[0], env={f"GS_TEST_{i}": p for i, p in enumerate(payloads)})
    img = image(env={"GS_TEST_IMG": payloads[1]}, prefix="")
    r = await launch(env, backend, ctx, request(0, 0, img=img))
    status, body = await http_get(r.url)
    got = json.loads(body)["env"]
    for i, p in enumerate(payloads):
        assert got[f"GS_TEST_{i}"] == p  # arrived verbatim
    assert got["GS_TEST_IMG"] == payloads[1]
    await stop(env, backend, r)
    assert not list(env.root.glob("canary*")), list(env.root.glob("canary*"))
    # a host choice or a user name that cannot be an account is refused before anything runs
    templated = env.backend(("a",), username="{username}", probe_username="root")
    with pytest.raises(BackendError, match="cannot be an account"):
        await templated.launch(context(user=user), request())
    assert not list(env.root.glob("canary*"))


async def test_other_unix_user_cannot_connect_to_the_socket(env, lab):
    backend = env.backend(("a",))
    r = await launch(env, backend, context(user="sockowner"), request())
    other = f"gsother{os.getpid() % 100000}"
    subprocess.run(["useradd", "-M", "-s", "/bin/sh", other], check=True, capture_output=True)
    try:
        code = (
            "import socket,sys\n"
            "s=socket.socket(socket.AF_UNIX)\n"
            "try:\n s.connect(sys.argv[1]); print('CONNECTED')\n"
            "except PermissionError: print('DENIED')\n"
        )
        out = lab.hosts["a"].exec("runuser", "-u", other, "--", "/usr/bin/python3", "-c", code, r.state["socket"], check=False)
        assert out.stdout.strip() == "DENIED", out
        # the owner can (as the relay's SSH channel does)
        assert (await http_get(r.url))[0] == 200
    finally:
        subprocess.run(["userdel", other], capture_output=True)
    await stop(env, backend, r)


async def test_polls_reuse_the_pooled_connection(env):
    backend = env.backend(("a", "b"))
    launches = [await launch(env, backend, context(user=f"poll{i}"), request()) for i in range(4)]
    before = backend.handshakes
    results = await asyncio.gather(*(backend.poll(r) for _ in range(25) for r in launches))
    assert results == [None] * 100
    assert backend.handshakes == before  # 100 polls, 0 new SSH connections
    for r in launches:
        await stop(env, backend, r)


async def test_apptainer_runtime_runs_the_image_with_the_gpus(env):
    rt = {"kind": "apptainer", "command": FAKE_APPTAINER, "prefix": "export GS_TEST_MODULE=loaded"}
    backend = env.backend([env.host("b", runtime=rt)])
    with pytest.raises(BackendError, match="has no container image"):
        await backend.launch(context(user="appt0"), request(1))
    img = image(image="docker://quay.io/jupyter/pytorch-notebook:cuda12-latest")
    r = await launch(env, backend, context(user="appt"), request(1, 24, img=img))
    status, body = await http_get(r.url)
    info = json.loads(body)
    assert info["cuda_visible_devices"] == r.gpus[0].uuid
    assert info["env"]["GS_TEST_MODULE"] == "loaded"
    args = (Path(r.state["session_dir"]) / "apptainer.args").read_text().split()
    sd = r.state["session_dir"]
    assert args == ["--nv", "--bind", f"{sd}:{sd}", "image=docker://quay.io/jupyter/pytorch-notebook:cuda12-latest",
                    f"cuda={r.gpus[0].uuid}"]
    assert r.state["runtime"] == "apptainer"
    await stop(env, backend, r)


async def test_internal_ssl_files_are_copied_over_sftp(env):
    certs = env.root / "hub-certs"
    certs.mkdir()
    files = {"JUPYTERHUB_SSL_KEYFILE": "KEY", "JUPYTERHUB_SSL_CERTFILE": "CERT", "JUPYTERHUB_SSL_CLIENT_CA": "CA"}
    for name, text in files.items():
        (certs / name).write_text(text)
    backend = env.backend(("a",))
    ctx = context(user="ssl", env={name: str(certs / name) for name in files})
    r = await launch(env, backend, ctx, request())
    sd = Path(r.state["session_dir"])
    environ = dict(
        item.split("=", 1) for item in Path(f"/proc/{r.state['pid']}/environ").read_text().split("\0") if "=" in item
    )
    for name, text in files.items():
        remote = Path(environ[name])
        assert remote.parent == sd / "certs" and remote.read_text() == text
        assert stat.S_IMODE(remote.stat().st_mode) == 0o600
    assert not (sd.parent / f".{ctx.slug}.certs").exists()
    await stop(env, backend, r)
    assert not sd.exists()


async def test_hub_api_url_setting_replaces_the_tunnel(env):
    backend = env.backend(("a",), hub_api_url="http://hub.example.org:8081/hub/api")
    r = await launch(env, backend, context(user="direct"), request())
    environ = dict(
        item.split("=", 1) for item in Path(f"/proc/{r.state['pid']}/environ").read_text().split("\0") if "=" in item
    )
    assert environ["JUPYTERHUB_API_URL"] == "http://hub.example.org:8081/hub/api"
    assert environ["JUPYTERHUB_ACTIVITY_URL"] == "http://hub.example.org:8081/hub/api/users/direct/activity"
    assert "api_port" not in r.state
    await stop(env, backend, r)


async def test_missing_known_hosts_file_refuses_every_host(env):
    missing = env.root / "no_such_known_hosts"
    backend = env.backend(("a", "b"), known_hosts=str(missing))
    cap = await backend.probe_capacity()
    assert [h.reachable for h in cap.hosts] == [False, False]
    for h in cap.hosts:
        assert f"refusing to connect to {h.name}" in h.error and f"{missing} does not exist" in h.error
    assert backend.handshakes == 0


# ---------------------------------------------------------------- a user-chosen host
# ``host`` option, end to end from user_options: the real catalog (``allow_host_choice``)
# → build_request → SSHBackend.launch. For one GPU of at least 16 GB best fit picks ``a``
# (a T4, the smallest card that fits); a user who picks ``b`` gets ``b``.

ON_GPU = {"backend": "gpu", "image": "test", "gpus": 1, "gpu_memory": 16}


def host_choice_catalog(env: Env, allow_host_choice: bool = True):
    backend = {"kind": "ssh", **env.raw(hosts=("a", "b"), allow_host_choice=allow_host_choice)}
    images = {"test": {"ssh": {"cmd": [sys.executable, SERVER], "env": {"GS_TEST_IMAGE": "1"}}}}
    return build_catalog(backends={"gpu": backend}, images=images)


def catalog_backend(env: Env, catalog) -> SSHBackend:
    b = SSHBackend("gpu", catalog.backends["gpu"].settings, tolerance=catalog.gpu_memory_tolerance)
    env.backends.append(b)
    return b


async def run_once(env: Env, backend: SSHBackend, user: str, req):
    """Launch (the server answers 200), stop; returns (host, GPU names)."""
    result = await launch(env, backend, context(user), req)
    host, names = result.state["host"], [g.name for g in result.gpus]
    await stop(env, backend, result)
    return host, names


async def test_chosen_host_wins_over_best_fit(env):
    catalog = host_choice_catalog(env)
    assert dict(catalog.backends["gpu"].host_choices) == {"a": "a", "b": "b"}
    backend = catalog_backend(env, catalog)

    best = build_request(ON_GPU, catalog, [], username="alice")
    assert best.host is None
    assert await run_once(env, backend, "alice", best) == ("a", ["Tesla T4"])  # best fit: the smallest card

    chosen = build_request({**ON_GPU, "host": "b"}, catalog, [], username="alice")
    assert chosen.host == "b" and "host=b" in chosen.summary()
    assert await run_once(env, backend, "alice", chosen) == ("b", ["NVIDIA A10"])  # best fit on b

    # "Any host" from the form is best fit again
    anyhost = build_request({**ON_GPU, "host": ""}, catalog, [], username="alice")
    assert await run_once(env, backend, "alice", anyhost) == ("a", ["Tesla T4"])


async def test_chosen_host_without_gpus(env):
    catalog = host_choice_catalog(env)
    backend = catalog_backend(env, catalog)
    req = build_request({"backend": "gpu", "image": "test", "gpus": 0, "host": "b"}, catalog, [], username="bob")
    assert await run_once(env, backend, "bob", req) == ("b", [])


async def test_host_not_offered_is_a_field_error(env):
    catalog = host_choice_catalog(env)
    with pytest.raises(OptionsError) as e:
        build_request({**ON_GPU, "host": "c"}, catalog, [], username="alice")
    assert e.value.errors == {"host": "unknown host 'c'; choose one of: a, b"}

    # the admin does not allow a host choice: no host is offered, any host is a field error
    catalog = host_choice_catalog(env, allow_host_choice=False)
    assert dict(catalog.backends["gpu"].host_choices) == {}
    with pytest.raises(OptionsError) as e:
        build_request({**ON_GPU, "host": "a"}, catalog, [], username="alice")
    assert e.value.errors == {"host": "this backend places servers itself; no host choice"}
    assert build_request({**ON_GPU, "host": ""}, catalog, [], username="alice").host is None
