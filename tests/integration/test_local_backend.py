"""LocalBackend driven directly (no hub), with real processes, a real relay and a real ledger.

The server is tests/fixtures/host_sock_server.py (HTTP on ``--ServerApp.sock``); the GPUs come
from tests/fixtures/fake_nvidia_smi: a T4 (15360 MiB), an A10 (23028), an A100-40 (40960)
and an A100-80 (81920).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import signal
import stat
import sys
import tempfile
import time
from pathlib import Path

import pytest
from relayhttp import http_get  # tests/ is on sys.path (tests/conftest.py)
from hubtools import procs
from sshhosts.accounts import let_accounts_run, remove_accounts, run_prefix

from gridspawner.backends.base import BackendError, LaunchContext, NoCapacity
from gridspawner.backends.local import LocalBackend
from gridspawner.request import LaunchRequest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FAKE_SMI = str(FIXTURES / "fake_nvidia_smi")
SERVER = str(FIXTURES / "host_sock_server.py")
GPUS = "Tesla T4,15360;NVIDIA A10,23028;NVIDIA A100-SXM4-40GB,40960;NVIDIA A100-SXM4-80GB,81920"
TOKEN = "tok-" + hashlib.sha256(os.urandom(16)).hexdigest()


#: servers run as per-user accounts (the default as root), made at first spawn
ACCOUNTS = run_prefix()


@pytest.fixture(scope="module", autouse=True)
def accounts():
    let_accounts_run(SERVER)
    yield
    remove_accounts(ACCOUNTS)


@pytest.fixture
def root():
    d = tempfile.mkdtemp(dir="/tmp", prefix="gsi-")  # short: socket paths < 104 bytes
    os.chmod(d, 0o711)
    os.mkdir(f"{d}/nb", 0o1777)  # the notebook directories, made by each user's account
    os.chmod(f"{d}/nb", 0o1777)
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


class Env:
    """Builds backends sharing one ledger (several instances = several hubs on one host)."""

    def __init__(self, root: Path):
        self.root = root
        self.backends: list[LocalBackend] = []
        self.launches: list = []

    def settings(self, **extra):
        raw = {
            "session_root": str(self.root / "s"),
            "ledger_dir": str(self.root / "l"),
            "notebook_dir": str(self.root / "nb" / "{username}"),
            "nvidia_smi": ["env", f"FAKE_NVIDIA_SMI_GPUS={GPUS}", FAKE_SMI],
            "interrupt_timeout": 3,
            "term_timeout": 3,
            "kill_timeout": 3,
            "start_wait": 15,
            "account": ACCOUNTS + "{username}",
            "create_accounts": True,
            **extra,
        }
        return LocalBackend.parse_settings("here", raw, "c.GridSpawner.backends['here']")

    def backend(self, **extra) -> LocalBackend:
        b = LocalBackend("here", self.settings(**extra), tolerance=0.07)
        self.backends.append(b)
        return b

    def ledger(self) -> dict[str, str]:
        d = self.root / "l"
        return {p.name: p.read_text() for p in d.iterdir() if not p.name.startswith(".")} if d.exists() else {}

    def sessions(self) -> list[str]:
        d = self.root / "s"
        return sorted(p.name for p in d.iterdir()) if d.exists() else []


@pytest.fixture
async def env(root):
    e = Env(root)
    yield e
    for b in e.backends:
        await b.close()
    for launch in e.launches:  # whatever a failing test left running
        pid = launch.state.get("pid")
        if pid:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass


def request(gpus=0, gb=0, *server_args, cmd=None):
    image = LocalBackend.parse_image(
        "test", {"cmd": cmd or [sys.executable, SERVER, *server_args], "env": {"GS_TEST_IMAGE": "1"}}, "img"
    )
    return LaunchRequest(backend="here", backend_kind="local", image="test", gpus=gpus, gpu_memory=gb, image_settings=image)


def context(user="alice", server="", messages=None):
    slug = f"{user}-{hashlib.sha256(f'{user}/{server}'.encode()).hexdigest()[:10]}"
    return LaunchContext(
        user=user,
        server_name=server,
        slug=slug,
        env={"JUPYTERHUB_API_TOKEN": TOKEN, "PATH": os.environ["PATH"], "JUPYTERHUB_USER": user},
        cmd=("jupyterhub-singleuser",),
        args=("--SingleUserNotebookApp.default_url=/lab",),
        log=logging.getLogger("test"),
        progress=(messages.append if messages is not None else (lambda m: None)),
    )


async def launch(env: Env, backend, ctx, req):
    result = await backend.launch(ctx, req)
    env.launches.append(result)
    return result


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


async def test_launch_serves_through_relay_and_keeps_secrets(env):
    backend = env.backend()
    messages: list[str] = []
    ctx = context(messages=messages)
    result = await launch(env, backend, ctx, request(1, 24))
    st = result.state
    a10 = result.gpus[0]
    assert (a10.name, a10.memory_total_mib) == ("NVIDIA A10", 23028)  # 23028 MiB counts as 24 GB
    assert messages[:5] == [
        "probing GPUs on localhost",
        "placing: localhost, GPU 1 — 1× NVIDIA A10 24 GB",
        f"running as account {ACCOUNTS}alice",
        "starting server",
        f"server process {st['pid']} started",
    ]
    assert result.url == f"http://127.0.0.1:{st['relay_port']}"
    assert result.description == "localhost, GPU 1 — 1× NVIDIA A10 24 GB"

    status, body = await http_get(result.url)
    seen = json.loads(body)
    assert status == 200
    assert seen["cuda_visible_devices"] == a10.uuid
    assert seen["token_sha256"] == hashlib.sha256(TOKEN.encode()).hexdigest()
    assert seen["cwd"] == str(env.root / "nb" / "alice")
    assert seen["env"] == {"GS_TEST_IMAGE": "1"}
    assert seen["pid"] == seen["pgid"] == seen["sid"] == st["pid"]  # own session and process group
    assert seen["argv"][1:2] == ["--SingleUserNotebookApp.default_url=/lab"]

    # the token is in no argv, no state, no file of the session
    ps = procs.all_command_lines()
    assert TOKEN not in ps and "host_sock_server" in ps
    assert TOKEN not in json.dumps(st)
    for p in Path(st["session_dir"]).iterdir():
        if p.is_file():
            assert TOKEN not in p.read_text(errors="replace")

    # private session directory and socket
    sdir = Path(st["session_dir"])
    assert stat.S_IMODE(sdir.stat().st_mode) == 0o700
    # root's, 0711: an account reaches its own session directory, never lists the others
    assert stat.S_IMODE(sdir.parent.stat().st_mode) == 0o711 and sdir.parent.stat().st_uid == 0
    assert sdir.stat().st_uid != 0
    sock = Path(st["socket"])
    assert stat.S_ISSOCK(sock.stat().st_mode) and stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert len(str(sock).encode()) < 104

    # the ledger names the card, the session and (last) the server's pid as the claim's holder
    ((name, entry),) = env.ledger().items()
    assert name == f"{a10.uuid}@1" and st["ledger_claims"] == [name]
    assert f"uuid={a10.uuid}\n" in entry and "user=alice\n" in entry and f"session={st['session_dir']}\n" in entry
    assert entry.splitlines()[-1].startswith(f"hold={st['pid']} ")

    json.dumps(st)  # JSON-able
    assert await backend.poll(result) is None
    cap = await backend.probe_capacity()
    (host,) = cap.hosts
    assert host.name == "localhost" and len(host.gpus) == 4 and a10.uuid not in host.free and len(host.free) == 3

    await backend.stop(result)
    assert gone(st["pid"])
    assert env.ledger() == {} and env.sessions() == []
    assert len((await backend.probe_capacity()).hosts[0].free) == 4
    with pytest.raises(OSError):
        await http_get(result.url, timeout=2)


@pytest.mark.parametrize(
    "gpus, gb, names",
    [
        (1, 0, ["Tesla T4"]),
        (1, 16, ["Tesla T4"]),  # 15360 MiB satisfies 16 GB …
        (1, 24, ["NVIDIA A10"]),  # … but not 24; 23028 MiB does
        (1, 40, ["NVIDIA A100-SXM4-40GB"]),
        (1, 80, ["NVIDIA A100-SXM4-80GB"]),
        (2, 24, ["NVIDIA A10", "NVIDIA A100-SXM4-40GB"]),
        (3, 16, ["Tesla T4", "NVIDIA A10", "NVIDIA A100-SXM4-40GB"]),
    ],
)
async def test_best_fit_placement(env, gpus, gb, names):
    backend = env.backend()
    result = await launch(env, backend, context(), request(gpus, gb))
    assert [g.name for g in result.gpus] == names
    status, body = await http_get(result.url)
    assert json.loads(body)["cuda_visible_devices"] == ",".join(g.uuid for g in result.gpus)
    await backend.stop(result, now=True)
    assert env.ledger() == {}


async def test_cpu_and_memory_choices_are_said_to_be_unenforced(env):
    """Without ``enforce_limits`` the local backend does not limit CPU or memory: the spawn
    page says so instead of pretending (with it: test_local_accounts.py)."""
    backend = env.backend(enforce_limits=False)
    assert LocalBackend.resource_limits(backend.settings) == "none"
    assert LocalBackend.resource_limits(env.backend().settings) == "all"
    messages: list[str] = []
    req = dataclasses.replace(request(), cpu=2.5, memory=16)
    result = await launch(env, backend, context(messages=messages), req)
    assert "2.5 CPUs and 16 GB memory: not enforced on localhost (the server may use the whole machine)" in messages
    await backend.stop(result, now=True)
    messages.clear()
    result = await launch(env, backend, context(messages=messages), request())
    assert not any("not enforced" in m for m in messages)
    await backend.stop(result, now=True)


async def test_no_capacity_messages(env):
    backend = env.backend()
    held = await launch(env, backend, context("bob"), request(1, 80))
    with pytest.raises(NoCapacity) as e:
        await backend.launch(context(), request(2, 80))
    assert str(e.value) == "2 GPUs with ≥ 80 GB requested, 0 free on localhost"
    with pytest.raises(NoCapacity) as e:
        await backend.launch(context(), request(2, 40))
    assert str(e.value) == "2 GPUs with ≥ 40 GB requested, 1 free on localhost"
    assert list(env.ledger()) == held.state["ledger_claims"] and env.sessions() == [context("bob").slug]
    await backend.stop(held, now=True)


async def test_six_concurrent_launches_on_four_gpus(env):
    # six backend instances: like six hubs sharing the host's ledger (not only one asyncio.Lock)
    backends = [env.backend() for _ in range(6)]
    ctxs = [context(f"user{i}") for i in range(6)]
    results = await asyncio.gather(
        *(b.launch(c, request(1, 0)) for b, c in zip(backends, ctxs)), return_exceptions=True
    )
    ok = [r for r in results if not isinstance(r, BaseException)]
    env.launches.extend(ok)
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(ok) == 4 and len(failed) == 2, results
    for f in failed:
        assert isinstance(f, NoCapacity), f
        assert "1 GPU requested, 0 free on localhost" in str(f) or "claimed by other sessions" in str(f)
    uuids = [line.removeprefix("uuid=") for text in env.ledger().values() for line in text.splitlines() if line.startswith("uuid=")]
    assert len(uuids) == 4 and len(set(uuids)) == 4
    assert sorted(uuids) == sorted(r.gpus[0].uuid for r in ok)
    assert len(env.sessions()) == 4  # the refused launches left no session directory
    for r in ok:
        assert (await http_get(r.url))[0] == 200
    await asyncio.gather(*(b.stop(r, now=True) for b, r in zip(backends, results) if r in ok))
    assert env.ledger() == {} and env.sessions() == []


@pytest.mark.parametrize("ignore, at_least", [("INT", 0.5), ("INT,TERM", 1.0)])
async def test_stop_escalates_for_servers_ignoring_signals(env, ignore, at_least):
    backend = env.backend(interrupt_timeout=0.5, term_timeout=0.5, kill_timeout=3)
    result = await launch(env, backend, context(), request(1, 0, f"--ignore={ignore}"))
    pid = result.state["pid"]
    t0 = time.monotonic()
    await backend.stop(result)
    took = time.monotonic() - t0
    assert gone(pid)
    assert at_least <= took < at_least + 3
    assert env.ledger() == {} and env.sessions() == []


async def test_stop_now_kills_at_once(env):
    backend = env.backend(interrupt_timeout=30, term_timeout=30)
    result = await launch(env, backend, context(), request(0, 0, "--ignore=INT,TERM"))
    t0 = time.monotonic()
    await backend.stop(result, now=True)
    assert time.monotonic() - t0 < 5 and gone(result.state["pid"])


async def test_restore_after_hub_restart(env):
    first = env.backend()
    result = await launch(env, first, context(), request(1, 40))
    state = json.loads(json.dumps(result.state))  # as stored in the hub database
    await first.close()  # the hub goes away; the server keeps running
    with pytest.raises(OSError):
        await http_get(result.url, timeout=2)
    assert not gone(state["pid"])

    second = env.backend()  # a new hub process
    restored = await second.restore(state)
    assert restored.url == result.url  # same port: the proxy's route stays right
    assert restored.gpus == result.gpus
    assert (await http_get(restored.url))[0] == 200
    assert await second.poll(restored) is None
    # the ledger still holds the card for a third hub
    cap = await env.backend().probe_capacity()
    assert result.gpus[0].uuid not in cap.hosts[0].free and len(cap.hosts[0].free) == 3
    await second.stop(restored)
    assert gone(state["pid"]) and env.ledger() == {} and env.sessions() == []


async def test_restore_falls_back_to_a_new_port_when_taken(env):
    first = env.backend()
    result = await launch(env, first, context(), request(0, 0))
    await first.close()
    squatter = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", result.state["relay_port"])
    try:
        restored = await env.backend().restore(result.state)
        assert restored.url != result.url
        assert (await http_get(restored.url))[0] == 200
    finally:
        squatter.close()
    await env.backends[-1].stop(restored, now=True)


async def test_server_exiting_at_once_leaves_nothing(env):
    backend = env.backend()
    messages: list[str] = []
    with pytest.raises(BackendError) as e:
        await backend.launch(context(messages=messages), request(1, 0, "--exit=3"))
    assert not isinstance(e.value, NoCapacity)
    assert "exited during start-up" in str(e.value)
    assert "fixture server exiting with status 3 as asked" in str(e.value)
    assert env.ledger() == {} and env.sessions() == []
    assert len((await backend.probe_capacity()).hosts[0].free) == 4


async def test_missing_command_is_reported(env):
    backend = env.backend()
    with pytest.raises(BackendError) as e:
        await backend.launch(context(), request(1, 0, cmd=["/nonexistent/jupyterhub-singleuser"]))
    assert "/nonexistent/jupyterhub-singleuser" in str(e.value)
    assert env.ledger() == {} and env.sessions() == []


async def test_poll_reports_a_dead_server_and_cleans_up(env):
    backend = env.backend()
    result = await launch(env, backend, context(), request(1, 0))
    os.killpg(result.state["pid"], signal.SIGKILL)
    for _ in range(50):
        if gone(result.state["pid"]):
            break
        await asyncio.sleep(0.05)
    assert await backend.poll(result) == 1
    # the hub calls no stop() after a poll found the server gone
    assert env.ledger() == {} and env.sessions() == []
    await backend.stop(result)  # still safe


async def test_leftover_server_of_the_same_session_is_replaced(env):
    backend = env.backend()
    old = await launch(env, backend, context(), request(1, 0))
    new = await launch(env, backend, context(), request(1, 0))  # e.g. the hub lost its state
    assert gone(old.state["pid"]) and not gone(new.state["pid"])
    assert len(env.ledger()) == 1 and env.sessions() == [context().slug]
    assert (await http_get(new.url))[0] == 200
    await backend.stop(new, now=True)


async def test_host_without_nvidia_smi(env):
    backend = env.backend(nvidia_smi="/nonexistent/nvidia-smi")
    cap = await backend.probe_capacity()
    assert cap.hosts[0].gpus == () and cap.hosts[0].reachable
    with pytest.raises(NoCapacity, match="localhost has no GPUs"):
        await backend.launch(context(), request(1, 0))
    result = await launch(env, backend, context(), request(0, 0))
    assert json.loads((await http_get(result.url))[1])["cuda_visible_devices"] == ""
    assert env.ledger() == {}
    await backend.stop(result, now=True)


async def test_broken_driver_is_a_probe_error(env):
    backend = env.backend(nvidia_smi=["env", "FAKE_NVIDIA_SMI_GPUS=!fail", FAKE_SMI])
    cap = await backend.probe_capacity()
    assert not cap.hosts[0].reachable and "NVIDIA-SMI has failed" in cap.hosts[0].error
    # a broken driver is a failure, not "No capacity" (for the user and the spawn metric)
    with pytest.raises(BackendError, match="cannot read the GPUs of localhost") as e:
        await backend.launch(context(), request(1, 0))
    assert not isinstance(e.value, NoCapacity) and e.value.outcome == "failure"


async def test_cancelled_launch_leaves_nothing(env):
    backend = env.backend()
    task = asyncio.ensure_future(backend.launch(context(), request(1, 0, "--delay=30")))
    for _ in range(100):
        if env.sessions():
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if not env.sessions() and not env.ledger():
            break
        await asyncio.sleep(0.05)
    assert env.ledger() == {} and env.sessions() == []
    ps = procs.all_command_lines()
    assert "--delay=30" not in ps


async def test_announced_stops_reach_the_servers_stops_file(env):
    """The usage side (quota, idle) tells a running server of its stops through the stops
    file of its session directory: the script runs as the server's login, and says so."""
    backend = env.backend()
    result = await launch(env, backend, context(), request())
    entries = [{"reason": "quota", "at": 1900000000.0}, {"reason": "idle", "at": 1900000600.0}]
    assert await backend.announce_stops(result, entries) is True
    stops_file = Path(result.state["session_dir"]) / "stops.json"
    assert json.loads(stops_file.read_text()) == {"stops": entries}
    await backend.stop(result)
    assert not stops_file.exists()
