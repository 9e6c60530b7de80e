"""Data mounts through the host backends, end to end: shared helpers of the tests that run
real rclone / sshfs FUSE mounts from a LocalBackend or an SSHBackend (on an SSH lab host), with
a moto S3 (tests/s3). The pytest fixtures are in `hostmounts.fixtures`.

The "server" is tests/fixtures/host_sock_server.py, started through a small ``sh -c`` that
first reads / writes the data as the server's user (`server_cmd`).

Needs root, /dev/fuse, fuse3, rclone, sshfs (scripts/install-mount-test-deps.sh), moto and,
for the ssh part, the SSH lab's tools (scripts/install-ssh-test-deps.sh).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from s3 import REGION
from sshhosts import SSHLab
from sshhosts.accounts import run_prefix
from relayhttp import http_get

from gridspawner.backends.base import LaunchContext
from gridspawner.backends.host.placement import HostLogin
from gridspawner.backends.local import LocalBackend
from gridspawner.backends.ssh import SSHBackend
from gridspawner.mounts.config import StorageConfig
from gridspawner.mounts.resolved import ResolvedMount, S3Secret, S3Source
from gridspawner.mounts.specs import MountSpec
from gridspawner.request import LaunchRequest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FAKE_SMI = str(FIXTURES / "fake_nvidia_smi")
SERVER = str(FIXTURES / "host_sock_server.py")
GPUS = "Tesla T4,15360;NVIDIA A10,23028"
TOKEN = "tok-" + hashlib.sha256(os.urandom(16)).hexdigest()
#: moto accepts any key while auth is not enforced: a distinctive one, to look for leaks
SECRET = "gsSecret" + hashlib.sha256(os.urandom(16)).hexdigest()[:24]
ACCESS = "GSACCESS" + hashlib.sha256(os.urandom(16)).hexdigest()[:12].upper()


def missing() -> str | None:
    """Why these tests cannot run here (they skip with it), or None."""
    if os.geteuid() != 0 and not shutil.which("fusermount3"):
        return "needs root or fusermount3"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    for tool in ("rclone", "sshfs", "fusermount3"):
        if not shutil.which(tool):
            return f"{tool} is not installed: run scripts/install-mount-test-deps.sh"
    return None


# --------------------------------------------------------------------------- helpers


def mounts_below(path: str | Path, mountinfo: str | None = None) -> list[str]:
    """Mount points at or below ``path`` (in this process's mount namespace, or in the given
    mountinfo text)."""
    text = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    p = str(path)
    return [ln.split()[4] for ln in text.splitlines() if ln.split()[4] == p or ln.split()[4].startswith(p + "/")]


def force_unmount_below(path: str | Path) -> None:
    for mp in sorted(mounts_below(path), reverse=True):
        subprocess.run(["fusermount3", "-uz", mp], check=False, capture_output=True)
        subprocess.run(["umount", "-l", mp], check=False, capture_output=True)


def processes_with(text: str) -> list[int]:
    found = []
    for p in os.listdir("/proc"):
        if p.isdigit() and int(p) != os.getpid():
            try:
                if text in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(p))
            except OSError:
                pass
    return found


def wait_for(pred, timeout=15.0, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def object_text(s3, key: str, bucket: str = "lab-data") -> str | None:
    c = s3.client()
    try:
        return c.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    except c.exceptions.NoSuchKey:
        return None


def server_cmd(before: str) -> list[str]:
    """The fixture server, started by ``sh -c`` that first runs ``before`` in the notebook
    directory as the server's user (the data link is ``./data``)."""
    return ["/bin/sh", "-c", before + '\nexec "$0" "$@"', sys.executable, SERVER]


def s3_mount(url: str, index: int, target: str, *, mode="mount", read_only=False, prefix="alice/",
             bucket="lab-data", access=ACCESS, secret=SECRET) -> tuple[ResolvedMount, MountSpec]:
    hm = ResolvedMount(index=index, target=target, mode=mode, read_only=read_only,
                   source=S3Source(url=url, bucket=bucket, prefix=prefix, region=REGION),
                   secret=S3Secret(access, secret))
    spec = MountSpec(type="s3", target=target, mode=mode, read_only=read_only, endpoint="campus",
                     bucket=bucket, prefix=prefix, credentials="keys")
    return hm, spec


def slug_for(user: str, server: str = "") -> str:
    return f"{user[:12]}-{hashlib.sha256(f'{user}/{server}'.encode()).hexdigest()[:10]}"


def context(mounts=(), *, user="alice", messages=None, tool="rclone", env=None) -> LaunchContext:
    return LaunchContext(
        user=user, server_name="", slug=slug_for(user),
        env={"JUPYTERHUB_API_TOKEN": TOKEN, "JUPYTERHUB_USER": user, **(env or {})},
        cmd=("jupyterhub-singleuser",), args=("--SingleUserNotebookApp.default_url=/lab",),
        log=logging.getLogger("test"),
        progress=(messages.append if messages is not None else (lambda m: None)),
        mounts=tuple(hm for hm, _ in mounts),
        storage=StorageConfig(tool=tool) if mounts else None,
    )


async def wait_http(url: str, within: float = 15) -> None:
    t0, last = time.monotonic(), None
    while time.monotonic() - t0 < within:
        try:
            if (await http_get(url, timeout=3))[0] == 200:
                return
        except (OSError, ConnectionError, asyncio.TimeoutError, IndexError, ValueError) as e:
            last = e
        await asyncio.sleep(0.2)
    raise AssertionError(f"{url} not reachable: {last!r}")



def bucket_keys(s3) -> set[str]:
    return {o["Key"] for o in s3.client().list_objects_v2(Bucket="lab-data").get("Contents", [])}


# --------------------------------------------------------------------------- local backend


class Local:
    def __init__(self, root: Path):
        self.root = root
        self.backends: list[LocalBackend] = []
        self.launches: list = []
        self.accounts = run_prefix()  # the per-user accounts' prefix (removed by the fixture)

    def backend(self, **extra) -> LocalBackend:
        raw = {
            "session_root": str(self.root / "s"),
            "ledger_dir": str(self.root / "l"),
            "notebook_dir": str(self.root / "nb" / "{username}"),
            "nvidia_smi": ["env", f"FAKE_NVIDIA_SMI_GPUS={GPUS}", FAKE_SMI],
            "interrupt_timeout": 2, "term_timeout": 2, "kill_timeout": 3, "start_wait": 15,
            "account": self.accounts + "{username}", "create_accounts": True,
            **extra,
        }
        b = LocalBackend("here", LocalBackend.parse_settings("here", raw, "c.GridSpawner.backends['here']"))
        self.backends.append(b)
        return b

    def request(self, mounts=(), before: str = ":", gpus: int = 0) -> LaunchRequest:
        image = LocalBackend.parse_image("test", {"cmd": server_cmd(before)}, "img")
        return LaunchRequest(backend="here", backend_kind="local", image="test", gpus=gpus, gpu_memory=0,
                             image_settings=image, mounts=tuple(spec for _, spec in mounts))

    def session_dir(self, user="alice") -> Path:
        return self.root / "s" / slug_for(user)

    def nb(self, user="alice") -> Path:
        return self.root / "nb" / user

    def ledger(self) -> dict:
        d = self.root / "l"
        return {p.name: p.read_text() for p in d.iterdir() if not p.name.startswith(".")} if d.exists() else {}

    async def launch(self, backend, ctx, req):
        result = await backend.launch(ctx, req)
        self.launches.append(result)
        await wait_http(result.url)
        return result

    async def stop(self, backend, result):
        await backend.stop(result)
        self.launches.remove(result)



def assert_nothing_left(env: Local, user="alice"):
    sdir = env.session_dir(user)
    assert mounts_below(env.root) == [], "no FUSE mount may outlive its server"
    assert not sdir.exists(), "the session directory (and the credential files in it) must go"
    assert not (env.nb(user) / "data").is_symlink(), "the data link goes with the session"
    assert env.ledger() == {}
    assert processes_with(str(sdir)) == [], "no rclone daemon of the session may remain"


class Remote:
    def __init__(self, lab: SSHLab, root: Path):
        self.lab = lab
        self.root = root
        self.session_root = f"/tmp/gsr{os.getpid() % 10000}{root.name[-4:]}-{{account}}"
        self.backends: list[SSHBackend] = []
        self.launches: list = []

    def backend(self) -> SSHBackend:
        host = self.lab.host_entry("a", nvidia_smi=["env", f"FAKE_NVIDIA_SMI_GPUS={GPUS}", FAKE_SMI])
        raw = self.lab.backend_settings([host], self.root, self.session_root)
        b = SSHBackend("gpu", SSHBackend.parse_settings("gpu", raw, "c.GridSpawner.backends['gpu']"))
        self.backends.append(b)
        return b

    def request(self, specs, before: str) -> LaunchRequest:
        image = SSHBackend.parse_image("test", {"cmd": server_cmd(before)}, "img")
        return LaunchRequest(backend="gpu", backend_kind="ssh", image="test", gpus=0, gpu_memory=0,
                             image_settings=image, mounts=tuple(specs))

    def session_dir(self, user="alice") -> Path:
        return Path(self.session_root.replace("{account}", "root")) / slug_for(user)

    async def host_mounts(self, backend: SSHBackend) -> str:
        """/proc/self/mountinfo as the host's sessions see it (sshd has its own mount namespace)."""
        r = await backend.ssh_transport(HostLogin("a", "root")).run("cat /proc/self/mountinfo\n", 10)
        assert r.exit_status == 0, r.stderr
        return r.stdout



def ssh_context(mounts, tool="rclone", messages=None) -> LaunchContext:
    ctx = context(mounts, tool=tool, messages=messages,
                  env={"JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api"})
    return ctx

