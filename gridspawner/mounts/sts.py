"""Per-user S3 credentials from admin credentials, scoped by an STS session policy.

The hub holds the admin's credentials (read from the environment variables the admin named,
or boto3's default chain) and asks STS for temporary credentials whose session policy allows
only the user's bucket/prefix. Only those reach a server, so long-lived admin keys never
leave the hub. The effective rights are the intersection of the session policy and the
role's (or federating user's) own policy.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from concurrent.futures import Executor
from typing import Mapping

from .config import S3Endpoint
from .resolved import S3Secret

_SESSION_NAME_BAD = re.compile(r"[^\w+=,.@-]")


class STSError(RuntimeError):
    """STS refused or could not be reached (message is safe to show a user)."""


def session_policy(bucket: str, prefix: str, read_only: bool, partition: str = "aws") -> dict:
    """The session policy: list within ``prefix``, read (and unless ``read_only`` write and
    delete) objects under it. ``prefix == ""`` → the whole bucket."""
    arn = f"arn:{partition}:s3:::{bucket}"
    objects = f"{arn}/{prefix}*"
    list_stmt: dict = {"Sid": "List", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [arn]}
    if prefix:
        list_stmt["Condition"] = {"StringLike": {"s3:prefix": [f"{prefix}*"]}}
    stmts = [
        list_stmt,
        {"Sid": "Locate", "Effect": "Allow", "Action": ["s3:GetBucketLocation"], "Resource": [arn]},
        {"Sid": "Read", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [objects]},
    ]
    if not read_only:
        stmts.append(
            {
                "Sid": "Write",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                "Resource": [objects],
            }
        )
    return {"Version": "2012-10-17", "Statement": stmts}


def session_name(username: str) -> str:
    """A RoleSessionName (2-64 of [\\w+=,.@-]) naming the user, for the provider's audit log."""
    return ("gs-" + _SESSION_NAME_BAD.sub("-", username))[:64]


def _admin_client(endpoint: S3Endpoint, env: Mapping[str, str], timeout: float):
    import boto3
    from botocore.config import Config

    sts = endpoint.sts
    kw = {}
    if sts.access_key_env:
        try:
            kw = {"aws_access_key_id": env[sts.access_key_env], "aws_secret_access_key": env[sts.secret_key_env]}
        except KeyError as e:
            raise STSError(f"the hub is missing its S3 admin credentials ({e.args[0]} is not set)") from None
    return boto3.session.Session().client(
        "sts",
        endpoint_url=sts.url or endpoint.url,
        region_name=endpoint.region,
        config=Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1}),
        **kw,
    )


def scoped_credentials_sync(
    endpoint: S3Endpoint, username: str, bucket: str, prefix: str, read_only: bool,
    *, env: Mapping[str, str] | None = None, timeout: float = 10,
) -> S3Secret:
    """Ask STS (AssumeRole or GetFederationToken) for credentials scoped to bucket/prefix."""
    from botocore.exceptions import BotoCoreError, ClientError

    if endpoint.sts is None:
        raise STSError(f"{endpoint.display_name} has no STS settings")
    policy = json.dumps(session_policy(bucket, prefix, read_only), separators=(",", ":"))
    try:
        client = _admin_client(endpoint, os.environ if env is None else env, timeout)
        if endpoint.sts.method == "assume_role":
            out = client.assume_role(
                RoleArn=endpoint.sts.role_arn,
                RoleSessionName=session_name(username),
                Policy=policy,
                DurationSeconds=endpoint.sts.duration,
            )
        else:
            out = client.get_federation_token(
                Name=session_name(username)[:32],
                Policy=policy,
                DurationSeconds=endpoint.sts.duration,
            )
    except ClientError as e:
        raise STSError(f"the storage service refused per-user credentials ({e.response.get('Error', {}).get('Code', 'error')})") from None
    except BotoCoreError:
        raise STSError("endpoint unreachable") from None
    c = out["Credentials"]
    expires_at, renew_at = _times(endpoint, c.get("Expiration"), time.time())
    return S3Secret(access_key=c["AccessKeyId"], secret_key=c["SecretAccessKey"], session_token=c["SessionToken"],
                    expires_at=expires_at, renew_at=renew_at)


def _times(endpoint: S3Endpoint, expiration, now: float) -> tuple[float, float]:
    """(expiry, renewal time) in epoch seconds, from STS's Expiration (the provider may
    shorten the duration asked for, e.g. to a role's maximum session duration)."""
    expires_at = expiration.timestamp() if hasattr(expiration, "timestamp") else now + endpoint.sts.duration
    lifetime = max(0.0, expires_at - now)
    return expires_at, expires_at - endpoint.sts.renew_margin(lifetime)


async def scoped_credentials(
    endpoint: S3Endpoint, username: str, bucket: str, prefix: str, read_only: bool,
    *, env: Mapping[str, str] | None = None, timeout: float = 10, executor: Executor | None = None,
) -> S3Secret:
    """`scoped_credentials_sync` in a thread, bounded by ``timeout``."""
    loop = asyncio.get_running_loop()
    fut = loop.run_in_executor(
        executor, lambda: scoped_credentials_sync(endpoint, username, bucket, prefix, read_only, env=env, timeout=timeout)
    )
    try:
        return await asyncio.wait_for(fut, timeout)
    except asyncio.TimeoutError:
        raise STSError("endpoint unreachable") from None
