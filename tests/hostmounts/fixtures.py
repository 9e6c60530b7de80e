"""pytest fixtures of the host-mount tests (import them into a test module with
``from hostmounts.fixtures import bucket, lab, lab_s3, local, remote  # noqa: F401``; they need
``s3`` from ``s3.fixtures`` too)."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from hubtools.ports import free_port
from s3 import REGION
from sshhosts import SSHLab, available
from sshhosts.accounts import let_accounts_run, let_accounts_use_fuse, remove_accounts

from gridspawner.backends.host.placement import HostLogin
from gridspawner.mounts.hostcmd import unmount_fragment, wrap

from . import ACCESS, SECRET, SERVER, Local, Remote, force_unmount_below


@pytest.fixture
def bucket(s3):
    c = s3.client()
    c.create_bucket(Bucket="lab-data")
    c.put_object(Bucket="lab-data", Key="alice/in/hello.txt", Body=b"hello from s3")
    c.put_object(Bucket="lab-data", Key="alice/keep.txt", Body=b"must survive")
    c.put_object(Bucket="lab-data", Key="bob/secret.txt", Body=b"bob only")
    return s3




@pytest.fixture
async def local():
    root = Path(tempfile.mkdtemp(dir="/tmp", prefix="gsm-"))  # short: socket paths
    # servers run as per-user accounts (the default as root), made at their first spawn
    os.chmod(root, 0o711)
    os.mkdir(root / "nb", 0o1777)
    os.chmod(root / "nb", 0o1777)
    let_accounts_run(SERVER)
    let_accounts_use_fuse()
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
    remove_accounts(env.accounts)




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
            await b.ssh_transport(HostLogin("a", "root")).run(wrap(unmount_fragment(str(env.session_dir()))), 20)
        except Exception:
            pass
    for b in env.backends:
        await b.close()
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(env.session_root.replace("{account}", "root"), ignore_errors=True)


