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
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hostmounts import (  # noqa: E402
    SECRET,
    TOKEN,
    assert_nothing_left,
    bucket_keys,
    context,
    missing,
    mounts_below,
    object_text,
    processes_with,
    s3_mount,
    ssh_context,
    wait_for,
    wait_http,
)
from hostmounts.fixtures import bucket, lab, lab_s3, local, remote  # noqa: E402,F401
from relayhttp import http_get  # noqa: E402
from s3.fixtures import s3, s3_server  # noqa: E402,F401

from gridspawner.backends.base import BackendError  # noqa: E402
from gridspawner.mounts.resolved import ResolvedMount, SSHSecret, SSHSource  # noqa: E402
from gridspawner.mounts.specs import MountSpec  # noqa: E402

pytestmark = pytest.mark.timeout(240)

if missing():
    pytest.skip(missing(), allow_module_level=True)


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
    # (as the user's account: the user owns the FUSE mount, and no other account, not even
    # root, may enter it)
    owner = sdir.stat()
    holder = subprocess.Popen(["setpriv", f"--reuid={owner.st_uid}", f"--regid={owner.st_gid}", "--clear-groups",
                               "sh", "-c", f"cd {target} && exec 3<keep.txt && exec sleep 60"])
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


def as_owner(sdir: Path, *argv) -> str:
    """``argv`` as the account owning the session directory (only it may enter its FUSE
    mounts); its output."""
    st = sdir.stat()
    return subprocess.run(["setpriv", f"--reuid={st.st_uid}", f"--regid={st.st_gid}", "--clear-groups",
                           *map(str, argv)], capture_output=True, text=True, check=True).stdout


async def test_stop_and_poll_keep_the_session_when_a_mount_cannot_be_unmounted(local, bucket, unmount_tools, caplog):
    """The one hook every cleanup goes through: no ``rm -rf`` while a mount is left."""
    m = s3_mount(bucket.url, 0, "d")
    backend = local.backend()
    result = await local.launch(backend, context([m]), local.request([m], gpus=1))
    sdir = local.session_dir()
    target = sdir / "data" / "d"
    assert as_owner(sdir, "cat", target / "keep.txt") == "must survive"

    # stop: the server goes and its GPU is released; the live mount and its directory stay
    unmount_tools.broken()
    with caplog.at_level(logging.ERROR):
        await local.stop(backend, result)
    assert "could not be unmounted" in caplog.text
    assert mounts_below(sdir) == [str(target)] and sdir.exists()
    assert local.ledger() == {}
    assert {"alice/in/hello.txt", "alice/keep.txt", "bob/secret.txt"} <= bucket_keys(bucket)
    assert as_owner(sdir, "cat", target / "keep.txt") == "must survive", "the mount is intact"

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
    as_owner(sdir, "rm", target / "keep.txt")
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
    hm = ResolvedMount(
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
