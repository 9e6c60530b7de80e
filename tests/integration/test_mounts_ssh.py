"""SSH storage: submit-time SFTP checks (asyncssh) and real sshfs / rclone-sftp FUSE mounts.

Key auth runs against a real OpenSSH sshd on its own network namespace (tests/sshhosts);
password auth against an asyncssh SSH/SFTP server on 127.0.0.1 (no system account needs a
password for it). Needs root, openssh-server, iproute2, fuse3, sshfs, rclone.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from gridspawner.mounts.config import parse_storage
from gridspawner.mounts.hostcmd import mount_fragment, unmount_fragment
from gridspawner.mounts.resolved import ResolvedMount, SSHSecret, SSHSource
from gridspawner.mounts.keys import KeyStore
from gridspawner.mounts.sshcheck import (
    AUTH_FAILED,
    HOST_UNREACHABLE,
    NOT_A_DIRECTORY,
    PATH_NOT_FOUND,
    check_ssh,
    host_key_not_trusted,
)

from hubtools import procs
from mountshell import mounted_under, run, unmount_everything
from sshhosts.lab import SSHLab, available

pytestmark = pytest.mark.timeout(180)
PASSWORD = "correct horse battery staple"


def _missing() -> str | None:
    for tool in ("sshfs", "rclone", "fusermount3"):
        if not shutil.which(tool):
            return f"{tool} is not installed: run scripts/install-mount-test-deps.sh"
    return None if os.path.exists("/dev/fuse") else "no /dev/fuse"


def storage_host(address, port, known_hosts, auth=("key",), user="root"):
    conf = parse_storage({
        "key_dir": "/tmp/unused-key-dir",
        "ssh": {"nas": {"address": address, "port": port, "known_hosts": str(known_hosts),
                        "paths": ["/*"], "user": user, "auth": list(auth)}},
    })
    return conf.ssh["nas"]


@pytest.fixture(scope="module")
def lab():
    reason = available()
    if reason:
        pytest.skip(reason)
    with SSHLab() as lab:
        lab.add_host("nas")
        yield lab


@pytest.fixture
def storage_dir(tmp_path):
    d = tmp_path / "export" / "alice"
    d.mkdir(parents=True)
    (d / "notes.txt").write_text("on the nas")
    return d


@pytest.fixture
def session(tmp_path):
    s = tmp_path / "sess" / "alice-0123456789"
    s.mkdir(parents=True, mode=0o700)
    yield s
    unmount_everything(s, tmp_path)


@pytest.fixture
def hub_key(lab, tmp_path):
    """A hub-managed key (KeyStore), authorised on the lab's hosts."""
    store = KeyStore(tmp_path / "keys")
    pub = store.ensure("alice")
    assert pub.startswith("ssh-ed25519 ") and "PRIVATE" not in pub
    assert store.ensure("alice") == pub, "the key pair is made once"
    priv = next((tmp_path / "keys").rglob("id_ed25519"))
    assert oct(priv.stat().st_mode & 0o777) == "0o600"
    assert oct(priv.parent.stat().st_mode & 0o777) == "0o700"
    before = lab.authorized_keys.read_text()
    lab.authorized_keys.write_text(before + pub + "\n")
    yield store
    lab.authorized_keys.write_text(before)


# ------------------------------------------------------------------ sshcheck (key auth, real sshd)


async def test_check_with_hub_key(lab, hub_key, storage_dir, tmp_path):
    nas = lab.hosts["nas"]
    host = storage_host(nas.address, nas.port, lab.known_hosts)
    key = hub_key.private_key("alice")
    assert await check_ssh(host, "root", str(storage_dir), client_key=key) is None
    assert await check_ssh(host, "root", str(storage_dir / "missing"), client_key=key) == PATH_NOT_FOUND
    assert await check_ssh(host, "root", str(storage_dir / "notes.txt"), client_key=key) == NOT_A_DIRECTORY
    other = KeyStore(tmp_path / "other-keys")
    other.ensure("mallory")
    assert await check_ssh(host, "root", str(storage_dir), client_key=other.private_key("mallory")) == AUTH_FAILED
    # a known_hosts naming another key for this address: refused, not trusted on first use
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"{nas.address} {other.public_key('mallory')}\n")
    assert await check_ssh(storage_host(nas.address, nas.port, wrong), "root", str(storage_dir), client_key=key) == host_key_not_trusted(nas.address)
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    assert await check_ssh(storage_host(nas.address, nas.port, empty), "root", str(storage_dir), client_key=key) == host_key_not_trusted(nas.address)


async def test_check_unreachable(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kh = tmp_path / "kh"
    kh.write_text("")
    host = storage_host("127.0.0.1", port, kh)
    assert await check_ssh(host, "root", "/", password="x", timeout=3) == HOST_UNREACHABLE


# ------------------------------------------------------------------ sshfs / rclone sftp mounts (key)


@pytest.mark.parametrize("tool", ["sshfs", "rclone"])
def test_key_mount(lab, hub_key, storage_dir, session, tool):
    if _missing():
        pytest.skip(_missing())
    nas = lab.hosts["nas"]
    m = ResolvedMount(
        index=0, target="nas", mode="mount", read_only=False,
        source=SSHSource(nas.address, "root", str(storage_dir), nas.port, lab.known_hosts.read_text()),
        secret=SSHSecret(private_key=hub_key.private_key_text("alice")),
    )
    r = run(mount_fragment(str(session), [m], tool=tool))
    assert r.returncode == 0, r.stdout + r.stderr
    target = session / "data" / "nas"
    assert (target / "notes.txt").read_text() == "on the nas"
    (target / "new.txt").write_text("from the server")
    deadline = time.monotonic() + 20  # rclone's VFS cache uploads a few seconds after close
    while not (storage_dir / "new.txt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (storage_dir / "new.txt").read_text() == "from the server"
    ps = procs.all_command_lines()
    assert "PRIVATE KEY" not in ps
    r = run(unmount_fragment(str(session)))
    assert "@@unmounted" in r.stdout and mounted_under(session) == []
    assert not (session / ".mounts").exists()


def test_key_mount_read_only_and_untrusted_host(lab, hub_key, storage_dir, session, tmp_path):
    if _missing():
        pytest.skip(_missing())
    nas = lab.hosts["nas"]
    m = ResolvedMount(0, "ro", "mount", True, SSHSource(nas.address, "root", str(storage_dir), nas.port, lab.known_hosts.read_text()),
                  SSHSecret(private_key=hub_key.private_key_text("alice")))
    r = run(mount_fragment(str(session), [m], tool="sshfs"))
    assert r.returncode == 0, r.stdout + r.stderr
    with pytest.raises(OSError):
        (session / "data" / "ro" / "x.txt").write_text("x")
    run(unmount_fragment(str(session)))
    # the host's key is not in the known_hosts sent along: sshfs must refuse to connect
    bad = ResolvedMount(0, "bad", "mount", False, SSHSource(nas.address, "root", str(storage_dir), nas.port, ""),
                    SSHSecret(private_key=hub_key.private_key_text("alice")))
    r = run(mount_fragment(str(session), [bad], tool="sshfs"), timeout=90)
    assert r.returncode != 0 and "@@mount-failed 0" in r.stdout
    assert mounted_under(session) == []


# ------------------------------------------------------------------ password auth (asyncssh server)

_SERVER = textwrap.dedent(
    """
    import asyncio, os, sys
    import asyncssh

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username):
            return True
        def password_auth_supported(self):
            return True
        def validate_password(self, username, password):
            return password == os.environ["GS_TEST_PASSWORD"]

    async def main():
        key = asyncssh.read_private_key(sys.argv[1])
        server = await asyncssh.create_server(Server, "127.0.0.1", 0, server_host_keys=[key], sftp_factory=True)
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

    asyncio.run(main())
    """
)


@pytest.fixture(scope="module")
def password_server(tmp_path_factory):
    import asyncssh

    d = tmp_path_factory.mktemp("pwsrv")
    key = asyncssh.generate_private_key("ssh-ed25519")
    (d / "host_key").write_bytes(key.export_private_key())
    (d / "host_key").chmod(0o600)
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(d / "host_key")], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "GS_TEST_PASSWORD": PASSWORD}, start_new_session=True,
    )
    try:
        port = int(proc.stdout.readline())
        kh = d / "known_hosts"
        kh.write_text(f"[127.0.0.1]:{port} {key.export_public_key().decode().strip()}\n")
        yield port, kh
    finally:
        proc.kill()
        proc.wait()


async def test_check_with_password(password_server, storage_dir):
    port, kh = password_server
    host = storage_host("127.0.0.1", port, kh, auth=("password",))
    assert await check_ssh(host, "alice", str(storage_dir), password=PASSWORD) is None
    assert await check_ssh(host, "alice", str(storage_dir), password="wrong") == AUTH_FAILED
    assert await check_ssh(host, "alice", str(storage_dir / "nope"), password=PASSWORD) == PATH_NOT_FOUND


@pytest.mark.parametrize("tool", ["sshfs", "rclone"])
def test_password_mount(password_server, storage_dir, session, tool):
    if _missing():
        pytest.skip(_missing())
    port, kh = password_server
    m = ResolvedMount(0, "pw", "mount", False, SSHSource("127.0.0.1", "alice", str(storage_dir), port, kh.read_text()),
                  SSHSecret(password=PASSWORD))
    r = run(mount_fragment(str(session), [m], tool=tool))
    assert r.returncode == 0, r.stdout + r.stderr
    assert (session / "data" / "pw" / "notes.txt").read_text() == "on the nas"
    ps = procs.all_command_lines()
    assert PASSWORD not in ps
    if tool == "rclone":
        assert not (session / ".mounts" / "0.pass").exists(), "the clear password file goes once obscured"
        assert PASSWORD not in (session / ".mounts" / "0.conf").read_text()
    r = run(unmount_fragment(str(session)))
    assert "@@unmounted" in r.stdout and mounted_under(session) == []


def test_password_copy(password_server, storage_dir, session):
    port, kh = password_server
    m = ResolvedMount(0, "cp", "copy", False, SSHSource("127.0.0.1", "alice", str(storage_dir), port, kh.read_text()),
                  SSHSecret(password=PASSWORD))
    r = run(mount_fragment(str(session), [m]))
    assert r.returncode == 0, r.stdout + r.stderr
    assert (session / "data" / "cp" / "notes.txt").read_text() == "on the nas"
    assert list((session / ".mounts").iterdir()) == []
