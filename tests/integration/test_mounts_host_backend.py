"""Data mounts through the host backends, end to end with real components.

LocalBackend: real rclone FUSE mounts / copies of a moto S3 bucket (tests/s3), made by the
launch script before the server (tests/fixtures/host_sock_server.py, started through a small
``sh -c`` that first reads / writes the data as the server's user) starts; stop, poll and
failed launches must leave no mount, no credential file and no session directory — and
must never ``rm -rf`` into a live mount (the bucket's objects must survive).

SSHBackend: a netns host of tests/sshhosts mounts the bucket from a moto server bound to
the lab's own 198.51.100.0/24 address, and a directory of an SSH storage server (another
netns host, reachable from the GPU host only) with sshfs.

Needs root, /dev/fuse, fuse3, rclone, sshfs (scripts/install-mount-test-deps.sh), moto and,
for the ssh part, the SSH lab's tools (scripts/install-ssh-test-deps.sh).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from s3 import REGION  # noqa: E402
from s3.fixtures import s3, s3_server  # noqa: E402,F401
from sshhosts import SSHLab, available  # noqa: E402
from relayhttp import http_get  # noqa: E402
from hubtools.ports import free_port  # noqa: E402

from gridspawner.backends.base import BackendError, LaunchContext  # noqa: E402
from gridspawner.backends.local import LocalBackend  # noqa: E402
from gridspawner.backends.ssh import SSHBackend  # noqa: E402
from gridspawner.mounts.config import StorageConfig  # noqa: E402
from gridspawner.mounts.hostcmd import (  # noqa: E402
    HostMount,
    S3Secret,
    S3Source,
    SSHSecret,
    SSHSource,
    unmount_fragment,
    wrap,
)
from gridspawner.mounts.request import MountSpec  # noqa: E402
from gridspawner.request import LaunchRequest  # noqa: E402

pytestmark = pytest.mark.timeout(240)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FAKE_SMI = str(FIXTURES / "fake_nvidia_smi")
SERVER = str(FIXTURES / "host_sock_server.py")
GPUS = "Tesla T4,15360;NVIDIA A10,23028"
TOKEN = "tok-" + hashlib.sha256(os.urandom(16)).hexdigest()
#: moto accepts any key while auth is not enforced: a distinctive one, to look for leaks
SECRET = "gsSecret" + hashlib.sha256(os.urandom(16)).hexdigest()[:24]
ACCESS = "GSACCESS" + hashlib.sha256(os.urandom(16)).hexdigest()[:12].upper()


def _missing() -> str | None:
    if os.geteuid() != 0 and not shutil.which("fusermount3"):
        return "needs root or fusermount3"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    for tool in ("rclone", "sshfs", "fusermount3"):
        if not shutil.which(tool):
            return f"{tool} is not installed: run scripts/install-mount-test-deps.sh"
    return None


if _missing():
    pytest.skip(_missing(), allow_module_level=True)


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
             bucket="lab-data", access=ACCESS, secret=SECRET) -> tuple[HostMount, MountSpec]:
    hm = HostMount(index=index, target=target, mode=mode, read_only=read_only,
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


@pytest.fixture
def bucket(s3):
    c = s3.client()
    c.create_bucket(Bucket="lab-data")
    c.put_object(Bucket="lab-data", Key="alice/in/hello.txt", Body=b"hello from s3")
    c.put_object(Bucket="lab-data", Key="alice/keep.txt", Body=b"must survive")
    c.put_object(Bucket="lab-data", Key="bob/secret.txt", Body=b"bob only")
    return s3


def bucket_keys(s3) -> set[str]:
    return {o["Key"] for o in s3.client().list_objects_v2(Bucket="lab-data").get("Contents", [])}


# --------------------------------------------------------------------------- local backend


class Local:
    def __init__(self, root: Path):
        self.root = root
        self.backends: list[LocalBackend] = []
        self.launches: list = []

    def backend(self, **extra) -> LocalBackend:
        raw = {
            "session_root": str(self.root / "s"),
            "ledger_dir": str(self.root / "l"),
            "notebook_dir": str(self.root / "nb" / "{username}"),
            "nvidia_smi": ["env", f"FAKE_NVIDIA_SMI_GPUS={GPUS}", FAKE_SMI],
            "interrupt_timeout": 2, "term_timeout": 2, "kill_timeout": 3, "start_wait": 15,
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


@pytest.fixture
async def local():
    root = Path(tempfile.mkdtemp(dir="/tmp", prefix="gsm-"))  # short: socket paths
    env = Local(root)
    yield env
    for result in env.launches:
        pid = result.state.get("pid")
        if pid:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
    for b in env.backends:
        await b.close()
    force_unmount_below(root)
    shutil.rmtree(root, ignore_errors=True)


def assert_nothing_left(env: Local, user="alice"):
    sdir = env.session_dir(user)
    assert mounts_below(env.root) == [], "no FUSE mount may outlive its server"
    assert not sdir.exists(), "the session directory (and the credential files in it) must go"
    assert not (env.nb(user) / "data").is_symlink(), "the data link goes with the session"
    assert env.ledger() == {}
    assert processes_with(str(sdir)) == [], "no rclone daemon of the session may remain"


async def test_rclone_mount_server_writes_land_in_bucket_read_only_refuses(local, bucket, caplog):
    caplog.set_level(logging.DEBUG)
    rw = s3_mount(bucket.url, 0, "d")
    ro = s3_mount(bucket.url, 1, "ro", read_only=True)
    before = (
        "cat data/d/in/hello.txt > seen.txt\n"
        "echo 'written by the server' > data/d/from-server.txt\n"
        "if (echo x > data/ro/nope.txt) 2>/dev/null; then echo wrote > ro.txt; else echo refused > ro.txt; fi"
    )
    backend = local.backend()
    messages: list[str] = []
    result = await local.launch(backend, context([rw, ro], messages=messages), local.request([rw, ro], before, gpus=1))
    sdir, nb = local.session_dir(), local.nb()
    assert "mounting data: s3 campus:lab-data/alice → data/d" in messages
    assert "mounting data: s3 campus:lab-data/alice → data/ro (read-only)" in messages
    assert f"data ready in {nb}/data" in messages
    assert messages.index("mounting data: s3 campus:lab-data/alice → data/d") < messages.index("starting server")

    # the mounts are FUSE mounts in the session directory, linked from the notebook directory
    assert sorted(mounts_below(sdir)) == [f"{sdir}/data/d", f"{sdir}/data/ro"]
    assert os.readlink(nb / "data") == f"{sdir}/data"
    info = json.loads((await http_get(result.url))[1])
    assert info["cwd"] == str(nb)
    assert (nb / "seen.txt").read_text() == "hello from s3"
    # a file the server wrote into the mount is an object in the bucket
    assert wait_for(lambda: object_text(bucket, "alice/from-server.txt") == "written by the server\n", 20)
    # the read-only mount refused the server's write; nothing reached the bucket
    assert (nb / "ro.txt").read_text() == "refused\n"
    assert object_text(bucket, "alice/nope.txt") is None
    with pytest.raises(OSError):
        (nb / "data" / "ro" / "keep.txt").unlink()

    # credentials: 0600 files in the 0700 session directory, never in argv, state, progress or logs
    assert stat.S_IMODE(sdir.stat().st_mode) == 0o700
    conf = sorted((sdir / ".mounts").glob("*.conf"))
    assert conf and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in conf)
    assert SECRET in conf[0].read_text()
    assert processes_with(SECRET) == [] and processes_with(TOKEN) == []
    assert SECRET not in json.dumps(result.state) and SECRET not in "".join(messages)
    assert SECRET not in caplog.text
    assert "mounts" not in result.state or SECRET not in str(result.state["mounts"])

    await local.stop(backend, result)
    assert_nothing_left(local)
    assert not (nb / "data").exists()
    # stop unmounted: it did not walk into the bucket
    assert {"alice/in/hello.txt", "alice/keep.txt", "alice/from-server.txt", "bob/secret.txt"} <= bucket_keys(bucket)


async def test_copy_mode_brings_the_files_before_the_server_starts(local, bucket):
    cp = s3_mount(bucket.url, 0, "copied", mode="copy")
    backend = local.backend()
    messages: list[str] = []
    before = "cat data/copied/in/hello.txt > seen.txt"  # the copy is complete when the server starts
    result = await local.launch(backend, context([cp], messages=messages), local.request([cp], before))
    sdir, nb = local.session_dir(), local.nb()
    assert "copying data: s3 campus:lab-data/alice → data/copied" in messages
    assert (nb / "seen.txt").read_text() == "hello from s3"
    assert (nb / "data" / "copied" / "keep.txt").read_text() == "must survive"
    assert mounts_below(sdir) == [], "a copy is no mount"
    assert not any((sdir / ".mounts").glob("0.*")), "a copy's credentials go as soon as it is done"
    # the copy is the user's own: changing it does not touch the bucket
    (nb / "data" / "copied" / "keep.txt").unlink()
    await local.stop(backend, result)
    assert_nothing_left(local)
    assert object_text(bucket, "alice/keep.txt") == "must survive"


async def test_refused_credentials_fail_the_launch_naming_the_mount(local, bucket):
    c = bucket.client()
    c.put_object(Bucket="lab-data", Key="alice/b/x.txt", Body=b"x")
    ak, sk = bucket.iam_user("gs-mount-user", {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    })
    good = s3_mount(bucket.url, 0, "a", access=ak, secret=sk)
    # keys that passed the submit-time check once, and were revoked / mistyped since
    bad = s3_mount(bucket.url, 1, "b", prefix="alice/b/", access=ak, secret="wrong" + sk[5:])
    backend = local.backend()
    messages: list[str] = []
    with bucket.enforced():
        with pytest.raises(BackendError) as err:
            await backend.launch(context([good, bad], messages=messages), local.request([good, bad], gpus=1))
    text = str(err.value)
    assert text.startswith("mount 2 (s3 campus:lab-data/alice/b → data/b) on localhost failed:"), text
    assert "403" in text or "SignatureDoesNotMatch" in text or "AccessDenied" in text, text
    assert sk not in text and sk[5:] not in text
    assert_nothing_left(local)


async def test_data_link_leaves_a_real_data_directory_alone(local, bucket):
    nb = local.nb()
    (nb / "data").mkdir(parents=True)
    (nb / "data" / "mine.txt").write_text("the user's own")
    cp = s3_mount(bucket.url, 0, "copied", mode="copy")
    backend = local.backend()
    messages: list[str] = []
    result = await local.launch(backend, context([cp], messages=messages), local.request([cp]))
    sdir = local.session_dir()
    assert f"data ready in {sdir}/data ('data' in the notebook directory is not ours to replace)" in messages
    assert (sdir / "data" / "copied" / "in" / "hello.txt").exists()
    assert "data_link" not in result.state
    await local.stop(backend, result)
    assert (nb / "data" / "mine.txt").read_text() == "the user's own"
    assert not sdir.exists()


async def test_poll_cleanup_of_a_dead_server_never_deletes_through_a_busy_mount(local, bucket):
    m = s3_mount(bucket.url, 0, "d")
    backend = local.backend()
    result = await local.launch(backend, context([m]), local.request([m], gpus=1))
    sdir = local.session_dir()
    target = sdir / "data" / "d"
    # a process of the user keeps the mount busy (its cwd and an open file in it)
    holder = subprocess.Popen(["sh", "-c", "exec 3<keep.txt; exec sleep 60"], cwd=target)
    try:
        time.sleep(0.3)
        os.killpg(result.state["pid"], signal.SIGKILL)  # the server crashes
        assert wait_for(lambda: not Path(f"/proc/{result.state['pid']}").exists() or
                        "Z" in Path(f"/proc/{result.state['pid']}/stat").read_text().rsplit(")", 1)[1][:3], 10)
        assert await backend.poll(result) == 1
        local.launches.remove(result)
        # the busy mount was detached (lazily), then the directory removed: nothing remote went
        assert mounts_below(sdir) == [] and not sdir.exists()
        assert {"alice/in/hello.txt", "alice/keep.txt", "bob/secret.txt"} <= bucket_keys(bucket)
        assert local.ledger() == {}
    finally:
        holder.kill()
        holder.wait()
    assert wait_for(lambda: processes_with(str(sdir)) == [], 10), "the rclone daemon ends once the mount is free"


@pytest.fixture
def unmount_tools(tmp_path, monkeypatch):
    """``.broken()``: unmounting fails from now on (as when the FUSE helpers are missing or
    refuse) — PATH starts with fusermount3 / fusermount / umount that always fail;
    ``.working()`` repairs it."""
    fake = tmp_path / "fakebin"
    fake.mkdir()
    for name in ("fusermount3", "fusermount", "umount"):
        (fake / name).write_text("#!/bin/sh\necho \"$0: refusing for the test\" >&2\nexit 1\n")
        (fake / name).chmod(0o755)
    original = os.environ["PATH"]

    class Tools:
        def broken(self):
            monkeypatch.setenv("PATH", f"{fake}:{original}")

        def working(self):
            monkeypatch.setenv("PATH", original)

    return Tools()


async def test_stop_and_poll_keep_the_session_when_a_mount_cannot_be_unmounted(local, bucket, unmount_tools, caplog):
    """The one hook every cleanup goes through: no ``rm -rf`` while a mount is left."""
    m = s3_mount(bucket.url, 0, "d")
    backend = local.backend()
    result = await local.launch(backend, context([m]), local.request([m], gpus=1))
    sdir = local.session_dir()
    target = sdir / "data" / "d"
    assert (target / "keep.txt").read_text() == "must survive"

    # stop: the server goes and its GPU is released; the live mount and its directory stay
    unmount_tools.broken()
    with caplog.at_level(logging.ERROR):
        await local.stop(backend, result)
    assert "could not be unmounted" in caplog.text
    assert mounts_below(sdir) == [str(target)] and sdir.exists()
    assert local.ledger() == {}
    assert {"alice/in/hello.txt", "alice/keep.txt", "bob/secret.txt"} <= bucket_keys(bucket)
    assert (target / "keep.txt").read_text() == "must survive", "the mount is intact"

    # the next launch of this session unmounts the leftover before it reuses the directory
    # (still broken: it refuses, naming the mount, and touches nothing)
    with pytest.raises(BackendError, match="cannot be unmounted"):
        await backend.launch(context([m]), local.request([m]))
    assert mounts_below(sdir) == [str(target)]
    unmount_tools.working()
    result = await local.launch(backend, context([m]), local.request([m], gpus=1))
    assert mounts_below(sdir) == [str(target)]  # a fresh mount of the new server

    # poll finding the server dead cleans up the same way
    unmount_tools.broken()
    os.killpg(result.state["pid"], signal.SIGKILL)
    await asyncio.sleep(0.3)
    assert await backend.poll(result) == 1
    assert mounts_below(sdir) == [str(target)] and sdir.exists()
    assert {"alice/in/hello.txt", "alice/keep.txt", "bob/secret.txt"} <= bucket_keys(bucket)
    # what a plain rm -rf would have done: deleting through the live mount deletes objects
    (target / "keep.txt").unlink()
    assert wait_for(lambda: object_text(bucket, "alice/keep.txt") is None, 10)

    # a later stop with working tools finishes the job
    unmount_tools.working()
    await local.stop(backend, result)
    assert_nothing_left(local)
    assert "alice/in/hello.txt" in bucket_keys(bucket)


async def test_launch_without_mounts_is_unchanged(local):
    backend = local.backend()
    messages: list[str] = []
    result = await local.launch(backend, context(messages=messages), local.request())
    assert not any("data" in m for m in messages)
    assert not (local.nb() / "data").exists() and "data_link" not in result.state
    await local.stop(backend, result)
    assert not local.session_dir().exists()


# --------------------------------------------------------------------------- ssh backend


@pytest.fixture(scope="module")
def lab():
    reason = available()
    if reason:
        pytest.skip(reason)
    with SSHLab() as lab:
        lab.add_host("a")
        lab.add_host("st", behind="a")  # an SSH storage server only the GPU host reaches
        yield lab


@pytest.fixture(scope="module")
def lab_s3(lab):
    """A moto server on the root namespace's side of host a's link (198.51.100.x): the
    netns host reaches it, nothing outside the lab does."""
    pytest.importorskip("moto")
    import ipaddress

    from moto.server import ThreadedMotoServer

    address = str(ipaddress.ip_address(lab.hosts["a"].address) - 1)
    port = free_port(address)
    server = ThreadedMotoServer(ip_address=address, port=port, verbose=False)
    server.start()
    url = f"http://{address}:{port}"

    class S3:
        def __init__(self):
            self.url = url

        def client(self):
            import boto3
            from botocore.config import Config

            return boto3.client("s3", endpoint_url=url, region_name=REGION, aws_access_key_id=ACCESS,
                                aws_secret_access_key=SECRET, config=Config(s3={"addressing_style": "path"}))

    s = S3()
    c = s.client()
    c.create_bucket(Bucket="lab-data")
    c.put_object(Bucket="lab-data", Key="alice/in/hello.txt", Body=b"hello from s3")
    try:
        yield s
    finally:
        server.stop()


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
        r = await backend.ssh_transport("a", "root").run("cat /proc/self/mountinfo\n", 10)
        assert r.exit_status == 0, r.stderr
        return r.stdout


@pytest.fixture
async def remote(lab):
    root = Path(tempfile.mkdtemp(prefix="gsmr-"))
    env = Remote(lab, root)
    yield env
    for result in env.launches:
        for b in env.backends[:1]:
            try:
                await b.stop(result, now=True)
            except Exception:
                pass
    for b in env.backends[:1]:
        try:  # whatever a failing test left mounted on the host
            await b.ssh_transport("a", "root").run(wrap(unmount_fragment(str(env.session_dir()))), 20)
        except Exception:
            pass
    for b in env.backends:
        await b.close()
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(env.session_root.replace("{account}", "root"), ignore_errors=True)


def ssh_context(mounts, tool="rclone", messages=None) -> LaunchContext:
    ctx = context(mounts, tool=tool, messages=messages,
                  env={"JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api"})
    return ctx


async def test_ssh_host_mounts_s3_from_the_lab(remote, lab_s3):
    m = s3_mount(lab_s3.url, 0, "d")
    backend = remote.backend()
    messages: list[str] = []
    before = "cat data/d/in/hello.txt > seen.txt\necho 'from the gpu host' > data/d/from-host.txt"
    result = await backend.launch(ssh_context([m], messages=messages), remote.request([m[1]], before))
    remote.launches.append(result)
    await wait_http(result.url)
    sdir = remote.session_dir()
    nb = remote.root / "nb" / "alice"
    assert result.state["pid"] in remote.lab.hosts["a"].pids()
    assert "mounting data: s3 campus:lab-data/alice → data/d" in messages
    assert (nb / "seen.txt").read_text() == "hello from s3"
    c = lab_s3.client()

    def landed():
        try:
            return c.get_object(Bucket="lab-data", Key="alice/from-host.txt")["Body"].read() == b"from the gpu host\n"
        except c.exceptions.NoSuchKey:
            return False

    assert wait_for(landed, 20)
    # the mount lives in the host's (sshd's) mount namespace, inside the session directory
    assert mounts_below(sdir, await remote.host_mounts(backend)) == [f"{sdir}/data/d"]
    assert mounts_below(sdir) == [], "not in the hub's namespace"
    assert processes_with(SECRET) == [] and SECRET not in json.dumps(result.state)

    await backend.stop(result)
    remote.launches.remove(result)
    assert mounts_below(sdir, await remote.host_mounts(backend)) == []
    assert not sdir.exists() and not (nb / "data").is_symlink()
    keys = {o["Key"] for o in c.list_objects_v2(Bucket="lab-data").get("Contents", [])}
    assert {"alice/in/hello.txt", "alice/from-host.txt"} <= keys


async def test_ssh_host_mounts_a_storage_server_directory_with_sshfs(remote, lab):
    st = lab.hosts["st"]
    export = remote.root / "export" / "alice"
    export.mkdir(parents=True)
    (export / "notes.txt").write_text("on the storage server")
    hm = HostMount(
        index=0, target="nas", mode="mount", read_only=True,
        source=SSHSource(address=st.address, user="root", path=str(export), port=st.port,
                         known_hosts=lab.known_hosts.read_text()),
        secret=SSHSecret(private_key=lab.client_key.read_text()),
    )
    spec = MountSpec(type="ssh", target="nas", mode="mount", read_only=True, host="nas", path=str(export),
                     user="root", auth="key")
    backend = remote.backend()
    messages: list[str] = []
    before = "cat data/nas/notes.txt > seen.txt\nls data/nas > listing.txt"
    result = await backend.launch(ssh_context([(hm, spec)], tool="sshfs", messages=messages),
                                  remote.request([spec], before))
    remote.launches.append(result)
    await wait_http(result.url)
    sdir = remote.session_dir()
    nb = remote.root / "nb" / "alice"
    assert f"mounting data: ssh nas:{export} → data/nas (read-only)" in messages
    assert (nb / "seen.txt").read_text() == "on the storage server"
    assert (nb / "listing.txt").read_text() == "notes.txt\n"
    info = await remote.host_mounts(backend)
    (line,) = [ln for ln in info.splitlines() if ln.split()[4] == f"{sdir}/data/nas"]
    assert "fuse.sshfs" in line and f"root@{st.address}:{export}" in line
    # the private key: a 0600 file in the 0700 session directory, never in an argv
    key = sdir / ".mounts" / "0.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert processes_with("PRIVATE KEY") == []

    await backend.stop(result)
    remote.launches.remove(result)
    assert mounts_below(sdir, await remote.host_mounts(backend)) == []
    assert not sdir.exists()
    assert (export / "notes.txt").read_text() == "on the storage server"
