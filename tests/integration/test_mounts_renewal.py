"""STS credentials of a live rclone S3 mount are replaced without remounting
(`HostBackend.renew_credentials`), from a LocalBackend and from an SSHBackend host.

moto (tests/s3) with auth enforced: the mount starts with STS credentials C1; the backend
writes C2 into the mount's credential file; C1 is revoked (`s3.revoke_temporary_credentials`:
from then on a request signed with C1 is refused). A file written into the mount afterwards must still
reach the bucket — rclone read C2 by itself.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hostmounts import context, missing, s3_mount, ssh_context, wait_for, wait_http  # noqa: E402
from hostmounts.fixtures import bucket, lab, lab_s3, local, remote  # noqa: E402,F401
from s3 import REGION, revoke_temporary_credentials  # noqa: E402
from s3.fixtures import s3, s3_server  # noqa: E402,F401

from gridspawner.mounts.hostcmd import REREAD_AFTER_RENEWAL  # noqa: E402
from gridspawner.mounts.resolved import S3Secret  # noqa: E402

pytestmark = pytest.mark.timeout(240)

if missing():
    pytest.skip(missing(), allow_module_level=True)

ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*", "sts:*"], "Resource": "*"}]}
#: the server writes data/d/<name> when the test creates go-<name> in the notebook directory
WRITE_ON_SIGNAL = ("(for f in first second; do while [ ! -e go-$f ]; do sleep 0.1; done;"
                   " printf $f > data/d/$f.txt && touch done-$f; done) &")


class STS:
    """Issue and revoke STS credentials of moto (this process); ``url``: the S3/STS endpoint."""

    def __init__(self, s3_server, url: str):
        self.admin = s3_server.iam_user("gs-admin", ALL)
        self.role = s3_server.role("gs-users", ALL)
        self.url = url

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.url, region_name=REGION, aws_access_key_id=self.admin[0],
                            aws_secret_access_key=self.admin[1], config=Config(s3={"addressing_style": "path"}))

    def issue(self) -> S3Secret:
        c = self.client("sts").assume_role(RoleArn=self.role, RoleSessionName="gs-alice", DurationSeconds=900)["Credentials"]
        now = time.time()
        # renewal planned now: rclone reads the file again REREAD_AFTER_RENEWAL s from now
        return S3Secret(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"], expires_at=now + 900, renew_at=now)

    def text(self, key: str) -> str | None:
        c = self.client("s3")
        try:
            return c.get_object(Bucket="lab-data", Key=key)["Body"].read().decode()
        except c.exceptions.NoSuchKey:
            return None


def with_secret(mount: tuple, secret: S3Secret) -> tuple:
    hm, spec = mount
    return dataclasses.replace(hm, secret=secret), dataclasses.replace(spec, credentials="sts")


def write(notebook_dir: Path, name: str) -> None:
    (notebook_dir / f"go-{name}").touch()
    assert wait_for(lambda: (notebook_dir / f"done-{name}").exists(), 30), f"the server did not write {name}"


async def renewal_scenario(backend, launch, sts: STS, cred_file: Path, notebook_dir: Path, c1: S3Secret) -> None:
    """Written with C1; C2 renewed in; C1 revoked; written again: both files reach the bucket."""
    assert json.loads(cred_file.read_text())["AccessKeyId"] == c1.access_key
    write(notebook_dir, "first")
    assert wait_for(lambda: sts.text("alice/first.txt") == "first", 30)
    c2 = sts.issue()
    assert await backend.renew_credentials(launch, {0: c2}) == [0]
    assert json.loads(cred_file.read_text())["AccessKeyId"] == c2.access_key
    assert oct(cred_file.stat().st_mode & 0o777) == "0o600"
    time.sleep(REREAD_AFTER_RENEWAL + 1)  # past the file's Expiration: rclone reads it again
    revoke_temporary_credentials(c1.access_key)
    with pytest.raises(Exception, match="InvalidAccessKeyId|InvalidClientTokenId|403"):
        boto3.client("s3", endpoint_url=sts.url, region_name=REGION, aws_access_key_id=c1.access_key,
                     aws_secret_access_key=c1.secret_key, aws_session_token=c1.session_token,
                     config=Config(retries={"max_attempts": 1})).list_objects_v2(Bucket="lab-data")
    write(notebook_dir, "second")
    assert wait_for(lambda: sts.text("alice/second.txt") == "second", 45), "rclone kept the revoked credentials"


async def test_local_mount_takes_renewed_credentials(local, bucket):
    sts = STS(bucket, bucket.url)
    c1 = sts.issue()
    m = with_secret(s3_mount(bucket.url, 0, "d"), c1)
    backend = local.backend()
    with bucket.enforced():
        result = await local.launch(backend, context([m]), local.request([m], WRITE_ON_SIGNAL))
        await renewal_scenario(backend, result, sts, local.session_dir() / ".mounts" / "0.json", local.nb(), c1)
        await local.stop(backend, result)
    assert await backend.renew_credentials(result, {0: sts.issue()}) == [], "a mount that is gone takes nothing"


async def test_ssh_host_mount_takes_renewed_credentials(remote, lab_s3, s3_server):  # noqa: F811
    s3_server.reset()  # moto keeps one store per process: start from a known one
    sts = STS(s3_server, lab_s3.url)
    sts.client("s3").create_bucket(Bucket="lab-data")
    c1 = sts.issue()
    m = with_secret(s3_mount(lab_s3.url, 0, "d"), c1)
    backend = remote.backend()
    with s3_server.enforced():
        result = await backend.launch(ssh_context([m]), remote.request([m[1]], WRITE_ON_SIGNAL))
        remote.launches.append(result)
        await wait_http(result.url)
        await renewal_scenario(backend, result, sts, remote.session_dir() / ".mounts" / "0.json",
                               remote.root / "nb" / "alice", c1)
        await backend.stop(result)
        remote.launches.remove(result)
