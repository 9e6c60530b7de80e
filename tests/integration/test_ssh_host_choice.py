"""A user-chosen host (``host`` option) on the ssh backend, end to end from user_options:
the real catalog (``allow_host_choice``) → build_request → SSHBackend.launch on real sshd
hosts (tests/sshhosts, as in test_ssh_backend.py).

Hosts ``a`` and ``b`` share this machine's filesystem, each with its own fake nvidia-smi
inventory. For one GPU of at least 16 GB best fit picks ``a`` (a T4, the smallest card
that fits); a user who picks ``b`` gets ``b``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sshhosts import SSHLab, available  # noqa: E402

from gridspawner.backends.base import LaunchContext  # noqa: E402
from gridspawner.backends.ssh import SSHBackend  # noqa: E402
from gridspawner.catalog import build_catalog  # noqa: E402
from gridspawner.request import OptionsError, build_request  # noqa: E402

pytestmark = pytest.mark.skipif(available() is not None, reason=available() or "")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FAKE_SMI = str(FIXTURES / "fake_nvidia_smi")
SERVER = str(FIXTURES / "host_sock_server.py")
TOKEN = "tok-" + hashlib.sha256(os.urandom(16)).hexdigest()

INVENTORY = {
    "a": "Tesla T4,15360;NVIDIA A100-SXM4-80GB,81920",
    "b": "NVIDIA A10,23028;NVIDIA A100-PCIE-40GB,40960",
}
ON_GPU = {"backend": "gpu", "image": "test", "gpus": 1, "gpu_memory": 16}


@pytest.fixture(scope="module")
def lab():
    with SSHLab() as lab:
        lab.add_host("a")
        lab.add_host("b")
        yield lab


class Setup:
    """The admin's config for one test (its own ledger and session root) and what it started."""

    def __init__(self, lab: SSHLab, root: Path):
        self.lab = lab
        self.root = root
        self.session_root = f"/tmp/gsh{os.getpid() % 10000}{root.name[-4:]}-{{account}}"
        self.backends: list[SSHBackend] = []
        self.launches: list = []

    def catalog(self, allow_host_choice: bool = True):
        hosts = [
            {
                "name": name,
                "address": self.lab.hosts[name].address,
                "nvidia_smi": ["env", f"FAKE_NVIDIA_SMI_SEED={name}", f"FAKE_NVIDIA_SMI_GPUS={gpus}", FAKE_SMI],
            }
            for name, gpus in INVENTORY.items()
        ]
        backend = {
            "kind": "ssh",
            "hosts": hosts,
            "username": "root",
            "client_keys": [str(self.lab.client_key)],
            "known_hosts": str(self.lab.known_hosts),
            "session_root": self.session_root,
            "ledger_dir": str(self.root / "ledger"),
            "notebook_dir": str(self.root / "nb" / "{username}"),
            "interrupt_timeout": 3,
            "term_timeout": 3,
            "kill_timeout": 3,
            "start_wait": 15,
            "connect_timeout": 3,
            "allow_host_choice": allow_host_choice,
        }
        images = {"test": {"ssh": {"cmd": [sys.executable, SERVER], "env": {"GS_TEST_IMAGE": "1"}}}}
        return build_catalog(backends={"gpu": backend}, images=images)

    def backend(self, catalog) -> SSHBackend:
        conf = catalog.backends["gpu"]
        b = SSHBackend("gpu", conf.settings, tolerance=catalog.gpu_memory_tolerance)
        self.backends.append(b)
        return b


@pytest.fixture
async def setup(lab):
    root = Path(tempfile.mkdtemp(prefix="gsshhost-"))
    s = Setup(lab, root)
    yield s
    for launch in s.launches:  # stop what a failing test left running
        try:
            await s.backends[0].stop(launch, now=True)
        except Exception:
            pass
    for b in s.backends:
        await b.close()
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(s.session_root.replace("{account}", "root"), ignore_errors=True)


def context(user: str) -> LaunchContext:
    slug = f"{user[:12]}-{hashlib.sha256(user.encode()).hexdigest()[:10]}"
    api_url = "http://127.0.0.1:9/hub/api"
    env = {
        "JUPYTERHUB_API_TOKEN": TOKEN,
        "JUPYTERHUB_USER": user,
        "JUPYTERHUB_API_URL": api_url,
        "JUPYTERHUB_ACTIVITY_URL": api_url + f"/users/{user}/activity",
    }
    return LaunchContext(
        user=user, server_name="", slug=slug, env=env, cmd=("jupyterhub-singleuser",), args=(),
        log=logging.getLogger("test"),
    )


async def http_status(url: str, within: float = 10) -> int:
    """GET url/env until it answers (the socket exists a moment before the server listens)."""
    host, port = url.removeprefix("http://").split(":")
    deadline = time.monotonic() + within
    while True:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 3)
            writer.write(b"GET /env HTTP/1.0\r\nHost: x\r\n\r\n")
            data = await asyncio.wait_for(reader.read(), 3)
            writer.close()
            return int(data.split(b" ", 2)[1])
        except (OSError, asyncio.TimeoutError, IndexError, ValueError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def run_once(setup: Setup, backend: SSHBackend, user: str, request):
    """Launch, check the server answers, stop; returns (host, GPU names)."""
    result = await backend.launch(context(user), request)
    setup.launches.append(result)
    assert await http_status(result.url) == 200
    host, names = result.state["host"], [g.name for g in result.gpus]
    await backend.stop(result)
    setup.launches.remove(result)
    return host, names


async def test_chosen_host_wins_over_best_fit(setup):
    catalog = setup.catalog()
    assert dict(catalog.backends["gpu"].host_choices) == {"a": "a", "b": "b"}
    backend = setup.backend(catalog)

    best = build_request(ON_GPU, catalog, [], username="alice")
    assert best.host is None
    assert await run_once(setup, backend, "alice", best) == ("a", ["Tesla T4"])  # best fit: the smallest card

    chosen = build_request({**ON_GPU, "host": "b"}, catalog, [], username="alice")
    assert chosen.host == "b" and "host=b" in chosen.summary()
    assert await run_once(setup, backend, "alice", chosen) == ("b", ["NVIDIA A10"])  # best fit on b

    # "Any host" from the form is best fit again
    anyhost = build_request({**ON_GPU, "host": ""}, catalog, [], username="alice")
    assert await run_once(setup, backend, "alice", anyhost) == ("a", ["Tesla T4"])


async def test_chosen_host_without_gpus(setup):
    catalog = setup.catalog()
    backend = setup.backend(catalog)
    req = build_request({"backend": "gpu", "image": "test", "gpus": 0, "host": "b"}, catalog, [], username="bob")
    assert await run_once(setup, backend, "bob", req) == ("b", [])


async def test_host_not_offered_is_a_field_error(setup):
    catalog = setup.catalog()
    with pytest.raises(OptionsError) as e:
        build_request({**ON_GPU, "host": "c"}, catalog, [], username="alice")
    assert e.value.errors == {"host": "unknown host 'c'; choose one of: a, b"}

    # the admin does not allow a host choice: no host is offered, any host is a field error
    catalog = setup.catalog(allow_host_choice=False)
    assert dict(catalog.backends["gpu"].host_choices) == {}
    with pytest.raises(OptionsError) as e:
        build_request({**ON_GPU, "host": "a"}, catalog, [], username="alice")
    assert e.value.errors == {"host": "this backend places servers itself; no host choice"}
    assert build_request({**ON_GPU, "host": ""}, catalog, [], username="alice").host is None
