"""A real S3 (+ STS, IAM) server for tests: moto's ThreadedMotoServer on 127.0.0.1, random port.

`S3Server` starts one in-process server; `client()` gives boto3 clients for it. IAM
enforcement (`enforce_auth()`) switches moto from "accept anything" to checking signatures and
the IAM user's / assumed role's policies. Moto does NOT evaluate STS session policies (the
``Policy`` passed to AssumeRole / GetFederationToken), nor bucket policies of assumed roles:
tests of session policies evaluate the recorded policy with moto's own policy engine
(`session_policy_of`) instead — see tests/integration/test_mounts_s3.py.

IAM action names: AWS authorizes an S3 API call by the IAM *action* its documentation names,
which is not always the operation's name — HeadBucket, ListObjects and ListObjectsV2 need
``s3:ListBucket``, HeadObject needs ``s3:GetObject``, a multipart upload ``s3:PutObject``
(AWS's "Actions, resources, and condition keys for Amazon S3" and each operation's
"Permissions" section). ``s3:ListObjectsV2`` or ``s3:HeadBucket`` in a policy allow nothing
on real S3. moto up to 5.2.5 authorized S3 calls by such action names; moto 5.2.6 authorizes
them by the bare operation name (its ``_get_action`` now asks the request router), so a
policy that is right for AWS is refused there and one that is wrong for AWS passes.
`S3Server` puts the documented action names back (`IAM_ACTION_OF_OPERATION`), so these
tests check what AWS checks, whichever moto is installed.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import boto3
from botocore.config import Config
from hubtools.ports import free_port

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
# not a secret: moto's default, accepted while auth is not enforced
ANY_KEY = "testing"


#: S3 operations whose IAM action has another name (AWS "Actions, resources, and condition
#: keys for Amazon S3"; each API page's "Permissions"). Operations not listed are authorized
#: by their own name (GetObject, PutObject, DeleteObject, ...).
IAM_ACTION_OF_OPERATION = {
    "HeadBucket": "ListBucket",
    "ListObjects": "ListBucket",
    "ListObjectsV2": "ListBucket",
    "ListObjectVersions": "ListBucketVersions",
    "HeadObject": "GetObject",
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "UploadPartCopy": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "CopyObject": "PutObject",
    "DeleteObjects": "DeleteObject",
    "ListMultipartUploads": "ListBucketMultipartUploads",
    "ListParts": "ListMultipartUploadParts",
    "ListBuckets": "ListAllMyBuckets",
    "GetBucketCors": "GetBucketCORS",
    "PutBucketCors": "PutBucketCORS",
    "DeleteBucketCors": "PutBucketCORS",
    "GetBucketLifecycleConfiguration": "GetLifecycleConfiguration",
    "PutBucketLifecycleConfiguration": "PutLifecycleConfiguration",
    "DeleteBucketLifecycle": "PutLifecycleConfiguration",
    "GetBucketNotificationConfiguration": "GetBucketNotification",
    "PutBucketNotificationConfiguration": "PutBucketNotification",
    "DeleteBucketTagging": "PutBucketTagging",
    "DeleteBucketEncryption": "PutEncryptionConfiguration",
    "GetBucketEncryption": "GetEncryptionConfiguration",
    "PutBucketEncryption": "PutEncryptionConfiguration",
}


def use_documented_iam_actions() -> None:
    """Make moto authorize S3 calls by their documented IAM action (idempotent).

    Only the authorization check sees the translated name: moto's dispatch keeps the
    operation it routed to."""
    from moto.iam.access_control import S3IAMRequest

    if getattr(S3IAMRequest, "_gridspawner_documented_actions", False):
        return
    original = S3IAMRequest.__init__

    def __init__(self, *args, action, **kwargs):
        name = action[0] if isinstance(action, list) else action
        original(self, *args, action=IAM_ACTION_OF_OPERATION.get(name, name), **kwargs)

    S3IAMRequest.__init__ = __init__
    S3IAMRequest._gridspawner_documented_actions = True


class S3Server:
    """One moto server (S3, STS, IAM) on loopback. Use as a context manager or call stop()."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        use_documented_iam_actions()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        self._server.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.05)
        self._lock = threading.Lock()

    def stop(self) -> None:
        self.relax_auth()
        self._server.stop()

    def __enter__(self) -> "S3Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ clients
    def client(self, service: str = "s3", key: str = ANY_KEY, secret: str = ANY_KEY, token: str | None = None) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            aws_session_token=token,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def reset(self) -> None:
        """Forget every bucket, user and role (moto's reset API)."""
        import urllib.request

        self.relax_auth()
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset", method="POST"), timeout=5).read()

    # ------------------------------------------------------------------ IAM enforcement
    def _set_auth(self, count: float) -> None:
        # the server runs in this process: set moto's switch directly (its /moto-api/reset-auth
        # endpoint answers 500 under ThreadedMotoServer in moto 5.x)
        from moto import settings
        from moto.core.authorization import ActionAuthenticatorMixin

        settings.INITIAL_NO_AUTH_ACTION_COUNT = count
        ActionAuthenticatorMixin.request_count = 0

    def enforce_auth(self) -> None:
        """From now on every request must be signed by a known IAM user / assumed role whose
        policies allow the action (moto's INITIAL_NO_AUTH_ACTION_COUNT = 0)."""
        self._set_auth(0)

    def relax_auth(self) -> None:
        self._set_auth(float("inf"))

    @contextmanager
    def enforced(self) -> Iterator[None]:
        self.enforce_auth()
        try:
            yield
        finally:
            self.relax_auth()

    def iam_user(self, name: str, policy: dict) -> tuple[str, str]:
        """An IAM user with an inline ``policy``; returns (access key, secret). Call before
        enforcing auth (or with an admin's keys)."""
        iam = self.client("iam")
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
        k = iam.create_access_key(UserName=name)["AccessKey"]
        return k["AccessKeyId"], k["SecretAccessKey"]

    def role(self, name: str, policy: dict, trusted: str = "*") -> str:
        """An IAM role anyone (``trusted``) may assume, with an inline ``policy``; its ARN."""
        iam = self.client("iam")
        trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": trusted}, "Action": "sts:AssumeRole"}],
        }
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        iam.put_role_policy(RoleName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
        return arn


def session_policy_of(access_key_id: str) -> str | None:
    """The session policy moto recorded for temporary credentials (same process only)."""
    from moto.sts.models import sts_backends

    for backend in sts_backends[ACCOUNT].values():
        for role in backend.assumed_roles:
            if role.access_key_id == access_key_id:
                return role.policy
    return None


def revoke_temporary_credentials(access_key_id: str) -> None:
    """Make STS credentials invalid from now on (same process only): moto records their
    expiry but never enforces it, so a test revokes them by dropping them from moto's
    assumed roles — with auth enforced, a request signed with them is then refused
    (InvalidAccessKeyId)."""
    from moto.sts.models import sts_backends

    for backend in sts_backends[ACCOUNT].values():
        backend.assumed_roles[:] = [r for r in backend.assumed_roles if r.access_key_id != access_key_id]


def allows(policy: str, action: str, resource: str, conditions: dict | None = None) -> bool:
    """Whether ``policy`` (JSON) allows ``action`` on ``resource``, by moto's policy engine."""
    from moto.iam.access_control import IAMPolicy, PermissionResult

    return IAMPolicy(policy).is_action_permitted(action, resource, None, conditions) == PermissionResult.PERMITTED
