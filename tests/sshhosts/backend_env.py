"""The ssh backend driven directly (no hub) on an `SSHLab`: settings, requests, launch contexts
and checks shared by the backend-level test modules.

Hosts share this machine's filesystem (and its PID namespace), so each gets its own fake
nvidia-smi inventory through the ``nvidia_smi`` setting (FAKE_NVIDIA_SMI_SEED gives each host
its own UUIDs), and each test its own ledger, session root and notebook directory (`Env`).
The server is tests/fixtures/host_sock_server.py, run by the venv's python.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import pytest

from gridspawner.backends.base import LaunchContext
from gridspawner.backends.ssh import SSHBackend
from gridspawner.request import LaunchRequest

from relayhttp import http_get

from .lab import SSHLab

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FAKE_SMI = str(FIXTURES / "fake_nvidia_smi")
FAKE_APPTAINER = str(FIXTURES / "fake_apptainer")
SERVER = str(FIXTURES / "host_sock_server.py")
TOKEN = "tok-" + hashlib.sha256(os.urandom(16)).hexdigest()

INVENTORY = {
    "a": "Tesla T4,15360;NVIDIA A100-SXM4-80GB,81920",
    "b": "NVIDIA A10,23028;NVIDIA A100-PCIE-40GB,40960",
    "c": "NVIDIA H100 80GB HBM3,81559;NVIDIA H100 80GB HBM3,81559",
}
FOUR_T4 = ";".join(["Tesla T4,15360"] * 4)


def smi(host: str, gpus: str | None = None) -> list[str]:
    return ["env", f"FAKE_NVIDIA_SMI_SEED={host}", f"FAKE_NVIDIA_SMI_GPUS={gpus or INVENTORY[host]}", FAKE_SMI]


class Env:
    """Backends (several = several hubs) sharing one ledger / session root for a test."""

    def __init__(self, lab: SSHLab, root: Path):
        self.lab = lab
        self.root = root
        self.session_root = f"/tmp/gss{os.getpid() % 10000}{root.name[-4:]}-{{account}}"
        self.backends: list[SSHBackend] = []
        self.launches: list = []

    def host(self, name: str, **extra) -> dict:
        return self.lab.host_entry(name, **{"nvidia_smi": smi(name if name in INVENTORY else "a"), **extra})

    def raw(self, hosts=("a", "b", "c"), **extra) -> dict:
        entries = [self.host(h) if isinstance(h, str) else h for h in hosts]
        return self.lab.backend_settings(entries, self.root, self.session_root, **extra)

    def backend(self, hosts=("a", "b", "c"), **extra) -> SSHBackend:
        b = SSHBackend("gpu", SSHBackend.parse_settings("gpu", self.raw(hosts, **extra), "c.GridSpawner.backends['gpu']"))
        self.backends.append(b)
        return b

    def session_dir(self, slug: str, account: str = "root") -> Path:
        return Path(self.session_root.replace("{account}", account)) / slug

    def ledger(self) -> dict[str, str]:
        d = self.root / "ledger"
        return {p.name: p.read_text() for p in d.iterdir() if not p.name.startswith(".")} if d.exists() else {}


def image(*server_args, cmd=None, **extra):
    return SSHBackend.parse_image(
        "test", {"cmd": cmd or [sys.executable, SERVER, *server_args], "env": {"GS_TEST_IMAGE": "1"}, **extra}, "img"
    )


def request(gpus=0, gb=0, *server_args, img=None, **kw):
    return LaunchRequest(backend="gpu", backend_kind="ssh", image="test", gpus=gpus, gpu_memory=gb,
                         image_settings=img or image(*server_args), **kw)


def context(user="alice", server="", messages=None, env=None, api_url="http://127.0.0.1:9/hub/api"):
    slug = f"{user[:12]}-{hashlib.sha256(f'{user}/{server}'.encode()).hexdigest()[:10]}"
    slug = "".join(ch if ch.isalnum() or ch == "-" else "-" for ch in slug).strip("-")
    base = {
        "JUPYTERHUB_API_TOKEN": TOKEN,
        "JUPYTERHUB_USER": user,
        "JUPYTERHUB_API_URL": api_url,
        "JUPYTERHUB_ACTIVITY_URL": api_url + f"/users/{user}/activity",
    }
    return LaunchContext(
        user=user, server_name=server, slug=slug, env={**base, **(env or {})}, cmd=("jupyterhub-singleuser",),
        args=("--SingleUserNotebookApp.default_url=/lab",), log=logging.getLogger("test"),
        progress=(messages.append if messages is not None else (lambda m: None)),
    )


async def launch(env: Env, backend, ctx, req):
    result = await backend.launch(ctx, req)
    env.launches.append(result)
    # the socket file exists from bind() on, a moment before the server listen()s
    await wait_http(result.url, within=10)
    return result


async def stop(env: Env, backend, result):
    await backend.stop(result)
    env.launches.remove(result)


async def wait_http(url: str, within: float) -> float:
    """Seconds until GET url/env answers 200 (fails after ``within``)."""
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < within:
        try:
            status, _ = await http_get(url, timeout=3)
            if status == 200:
                return time.monotonic() - t0
        except (OSError, ConnectionError, asyncio.TimeoutError, IndexError, ValueError) as e:
            last = e
        await asyncio.sleep(0.2)
    raise AssertionError(f"{url} not reachable within {within} s: {last!r}")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def processes_with(text: str) -> list[int]:
    found = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if text in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(p))
            except OSError:
                pass
    return [p for p in found if p != os.getpid()]




async def cleanup(e: Env) -> None:
    """Stop what a failing test left running, close the backends, remove the test's files."""
    import shutil

    for launch in e.launches:
        for b in e.backends[:1]:
            try:
                await b.stop(launch, now=True)
            except Exception:
                pass
    for b in e.backends:
        await b.close()
    shutil.rmtree(e.root, ignore_errors=True)
    shutil.rmtree(e.session_root.replace("{account}", "root"), ignore_errors=True)


def lab_fixture(*hosts: str | tuple[str, str], accounts: bool = False):
    """A module-scoped ``lab`` fixture with these hosts; ``(name, gateway)``: behind that
    gateway (listed before it). ``accounts``: unprivileged accounts may log in too
    (`SSHLab.open_to_accounts`, for `accounts.unix_accounts`)."""

    @pytest.fixture(scope="module")
    def lab():
        with SSHLab() as lab:
            if accounts:
                lab.open_to_accounts()
            for h in hosts:
                name, behind = (h, None) if isinstance(h, str) else h
                lab.add_host(name, behind=behind)
            yield lab

    return lab


def env_fixture(prefix: str = "gssh-"):
    """An ``env`` fixture: an `Env` on the module's ``lab``; afterwards every host's network
    is up again (a test may have made one go dark) and `cleanup` ran."""

    @pytest.fixture
    async def env(lab):
        e = Env(lab, Path(tempfile.mkdtemp(prefix=prefix)))
        yield e
        for host in lab.hosts.values():
            lab.light_up(host)
        await cleanup(e)

    return env
