"""Host mount fragments run by a real ``sh``: real rclone / s3fs FUSE mounts of a moto bucket,
rclone copy, sshfs / rclone-sftp mounts of a real sshd, unmount and cleanup, injection canaries.

Needs root (or /dev/fuse + fusermount3 for the user), fuse3, rclone, s3fs, sshfs
(`scripts/install-mount-test-deps.sh`) and moto.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from gridspawner.mounts.hostcmd import EXIT_MOUNT, mount_fragment, unmount_fragment
from gridspawner.mounts.resolved import ResolvedMount, S3Secret, S3Source, SSHSecret, SSHSource

from hubtools import procs
from mountshell import mounted_under, run, unmount_everything
from s3 import ANY_KEY
from s3.fixtures import s3, s3_server  # noqa: F401

pytestmark = pytest.mark.timeout(180)


def _missing() -> str | None:
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    for tool in ("rclone", "s3fs", "sshfs", "fusermount3"):
        if not shutil.which(tool):
            return f"{tool} is not installed: run scripts/install-mount-test-deps.sh"
    return None


if _missing():
    pytest.skip(_missing(), allow_module_level=True)


@pytest.fixture
def session(tmp_path):
    s = tmp_path / "sessions" / "alice-0123456789"
    s.mkdir(parents=True)
    s.chmod(0o700)
    yield s
    unmount_everything(s, tmp_path)


@pytest.fixture
def bucket(s3):
    c = s3.client()
    c.create_bucket(Bucket="lab-data")
    c.put_object(Bucket="lab-data", Key="alice/in/hello.txt", Body=b"hello from s3")
    c.put_object(Bucket="lab-data", Key="bob/secret.txt", Body=b"bob only")
    return s3


def s3_mount(s3, index=0, target="d", mode="mount", read_only=False, prefix="alice/", bucket="lab-data"):
    return ResolvedMount(
        index=index, target=target, mode=mode, read_only=read_only,
        source=S3Source(url=s3.url, bucket=bucket, prefix=prefix),
        secret=S3Secret(ANY_KEY, ANY_KEY),
    )


def wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def check_unmounted(session: Path):
    r = run(unmount_fragment(str(session)))
    assert r.returncode == 0, r.stderr
    assert "@@unmounted" in r.stdout
    assert mounted_under(session) == []
    assert not (session / ".mounts").exists(), "credential files must be gone after unmount"


@pytest.mark.parametrize("tool", ["rclone", "s3fs"])
def test_s3_mount_write_appears_in_bucket(bucket, session, tool):
    frag = mount_fragment(str(session), [s3_mount(bucket)], tool=tool)
    r = run(frag)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "@@mounted 0" in r.stdout
    target = session / "data" / "d"
    assert mounted_under(session) == [str(target)]
    # credentials: only in a 0600 file in the 0700 .mounts directory, never in argv
    cdir = session / ".mounts"
    assert stat.S_IMODE(cdir.stat().st_mode) == 0o700
    creds = [p for p in cdir.iterdir() if p.suffix in (".conf", ".passwd")]
    assert creds and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in creds)
    ps = procs.all_command_lines()
    assert "secret_access_key" not in ps and f"{ANY_KEY}:{ANY_KEY}" not in ps
    assert (target / "in" / "hello.txt").read_text() == "hello from s3"
    assert not (target / ".." / ".." / "bob").exists()
    (target / "out.txt").write_text("written on the host")
    c = bucket.client()

    def landed():
        try:
            return c.get_object(Bucket="lab-data", Key="alice/out.txt")["Body"].read() == b"written on the host"
        except c.exceptions.NoSuchKey:
            return False

    os.sync()
    assert wait_for(landed, 15), "a file written into the mount must appear in the bucket"
    check_unmounted(session)


@pytest.mark.parametrize("tool", ["rclone", "s3fs"])
def test_s3_read_only_mount_refuses_writes(bucket, session, tool):
    r = run(mount_fragment(str(session), [s3_mount(bucket, read_only=True)], tool=tool))
    assert r.returncode == 0, r.stdout + r.stderr
    target = session / "data" / "d"
    assert (target / "in" / "hello.txt").read_text() == "hello from s3"
    with pytest.raises(OSError):
        (target / "nope.txt").write_text("x")
    with pytest.raises(OSError):
        (target / "in" / "hello.txt").unlink()
    assert bucket.client().list_objects_v2(Bucket="lab-data", Prefix="alice/nope").get("KeyCount") == 0
    check_unmounted(session)


def test_copy_mode_brings_files_and_drops_credentials(bucket, session):
    r = run(mount_fragment(str(session), [s3_mount(bucket, mode="copy", target="copied")]))
    assert r.returncode == 0, r.stdout + r.stderr
    target = session / "data" / "copied"
    assert (target / "in" / "hello.txt").read_text() == "hello from s3"
    assert mounted_under(session) == []
    assert list((session / ".mounts").iterdir()) == [], "a copy's credential file goes once the copy is done"
    check_unmounted(session)
    assert (target / "in" / "hello.txt").exists(), "unmount leaves copied data alone"


def test_two_mounts_and_failure_undoes_earlier_ones(bucket, session):
    good = s3_mount(bucket, index=0, target="a")
    bad = s3_mount(bucket, index=1, target="b", bucket="no-such-bucket", mode="copy")
    r = run(mount_fragment(str(session), [good, bad]))
    assert r.returncode == EXIT_MOUNT, r.stdout + r.stderr
    assert "@@mounted 0" in r.stdout and "@@mount-failed 1" in r.stdout
    assert mounted_under(session) == [], "a failed launch must not leave mounts"
    assert not (session / ".mounts").exists()


def test_unmount_after_crash_and_for_dead_session(bucket, session):
    r = run(mount_fragment(str(session), [s3_mount(bucket, index=0, target="a"), s3_mount(bucket, index=1, target="b", read_only=True)]))
    assert r.returncode == 0, r.stderr
    assert len(mounted_under(session)) == 2
    # the FUSE daemons die (a crash): the mounts stay as dead "transport endpoint" mounts
    pids = subprocess.run(["pgrep", "-f", f"rclone mount .* {session}/data/"], capture_output=True, text=True).stdout.split()
    assert pids
    for pid in pids:
        os.kill(int(pid), 9)
    time.sleep(0.5)
    assert len(mounted_under(session)) == 2
    # the unmount fragment needs no mount list: it finds them in /proc/self/mountinfo
    check_unmounted(session)


def test_busy_mount_is_unmounted_lazily(bucket, session):
    r = run(mount_fragment(str(session), [s3_mount(bucket)]))
    assert r.returncode == 0, r.stderr
    holder = subprocess.Popen(["sleep", "30"], cwd=session / "data" / "d")
    try:
        check_unmounted(session)
    finally:
        holder.kill()
        holder.wait()


CANARY = "/tmp/gridspawner-mount-canary"


@pytest.mark.parametrize(
    "field,value",
    [
        ("bucket", "lab-data$(touch /tmp/gridspawner-mount-canary)"),
        ("prefix", "alice/`touch /tmp/gridspawner-mount-canary`/"),
        ("prefix", "alice/$(touch${IFS}/tmp/gridspawner-mount-canary)/"),
        ("target", "d;touch /tmp/gridspawner-mount-canary"),
        ("path", "/tmp/x'$(touch /tmp/gridspawner-mount-canary)'"),
        ("session", "/tmp/s$(touch /tmp/gridspawner-mount-canary)"),
        ("secret", "k\nGRIDSPAWNER_EOF\ntouch /tmp/gridspawner-mount-canary"),
    ],
)
def test_injection_canaries_never_execute(bucket, session, field, value):
    """Unsafe values are refused by the builder; were they not, quoting would keep them inert."""
    if os.path.exists(CANARY):
        os.unlink(CANARY)
    m = s3_mount(bucket)
    try:
        if field == "bucket":
            m = s3_mount(bucket, bucket=value)
        elif field == "prefix":
            m = s3_mount(bucket, prefix=value)
        elif field == "target":
            m = s3_mount(bucket, target=value)
        elif field == "path":
            m = ResolvedMount(0, "d", "mount", False, SSHSource("127.0.0.1", "root", value), SSHSecret(password="x"))
        elif field == "secret":
            m = ResolvedMount(0, "d", "mount", False, S3Source(bucket.url, "lab-data", "alice/"), S3Secret(value, value))
        frag = mount_fragment(value if field == "session" else str(session), [m])
    except ValueError:
        frag = None
    if frag is not None:  # not refused: it must still be harmless
        run(frag)
    assert not os.path.exists(CANARY)
    assert frag is None, f"{field}={value!r} should be refused by the builder"


def test_quoting_keeps_odd_but_valid_values_inert(bucket, session):
    """Valid names with characters sh cares about ('=', '+', '@', ',', '~') mount fine."""
    c = bucket.client()
    c.put_object(Bucket="lab-data", Key="alice/a=b+c@d,e~f/x.txt", Body=b"odd")
    r = run(mount_fragment(str(session), [s3_mount(bucket, prefix="alice/a=b+c@d,e~f/", mode="copy", target="odd")]))
    assert r.returncode == 0, r.stdout + r.stderr
    assert (session / "data" / "odd" / "x.txt").read_text() == "odd"
