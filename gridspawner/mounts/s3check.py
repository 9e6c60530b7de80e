"""Submit-time check of an S3 mount: the endpoint answers, the bucket (and prefix) exist, the
credentials can list and read — and write, for a writable mount. boto3 is blocking, so it
runs in a thread executor under a timeout: the hub's event loop never waits on S3.

The result is ``None`` (fine) or one of the field messages below, meant for the form field
of the mount (``mounts[i].bucket`` / ``.prefix`` / ``.access_key``, see `field_for`).
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from .config import S3Endpoint
from .resolved import S3Secret
from .specs import MountSpec

ENDPOINT_UNREACHABLE = "endpoint unreachable"
BUCKET_NOT_FOUND = "bucket not found"
PREFIX_NOT_FOUND = "prefix not found"
ACCESS_DENIED = "access denied"
CANNOT_WRITE = "cannot write (bucket is read-only for these credentials)"

_NOT_FOUND = {"404", "NoSuchBucket", "NotFound"}
_DENIED = {
    "403", "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch",
    "InvalidToken", "ExpiredToken", "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem",
}

#: which form field a message belongs to
_FIELDS = {
    ENDPOINT_UNREACHABLE: "endpoint",
    BUCKET_NOT_FOUND: "bucket",
    PREFIX_NOT_FOUND: "prefix",
    ACCESS_DENIED: "access_key",  # with the hub's STS credentials: resolve puts it at "credentials"
    CANNOT_WRITE: "read_only",
}


def field_for(message: str) -> str:
    """The mount field a check message is shown next to (``mounts[i].<field>``)."""
    return _FIELDS.get(message, "bucket")


@dataclass(frozen=True)
class _Result:
    message: str | None


def _code(err: Any) -> str:
    return str(getattr(err, "response", {}).get("Error", {}).get("Code", ""))


def _client(endpoint: S3Endpoint, creds: S3Secret, timeout: float):
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint.url,
        region_name=endpoint.region,
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        aws_session_token=creds.session_token,
        config=Config(
            connect_timeout=max(1.0, timeout / 2),
            read_timeout=max(1.0, timeout / 2),
            retries={"max_attempts": 1, "mode": "standard"},
            s3={"addressing_style": "path" if endpoint.path_style else "auto"},
        ),
    )


def check_s3_sync(spec: MountSpec, creds: S3Secret, endpoint: S3Endpoint, timeout: float = 10) -> str | None:
    """The blocking check (run it in a thread; `check_s3` does)."""
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

    try:
        s3 = _client(endpoint, creds, timeout)
        bucket, prefix = spec.bucket, spec.prefix or ""
        # 1. the bucket: HeadBucket answers 404 / 403 without a body; with a prefix-scoped
        # session policy HeadBucket may be denied while listing the prefix works, so a 403
        # here is only final when listing is denied as well
        try:
            s3.head_bucket(Bucket=bucket)
        except ClientError as e:
            if _code(e) in _NOT_FOUND:
                return BUCKET_NOT_FOUND
            if _code(e) not in _DENIED:
                raise
        # 2. list (the prefix must exist unless the mount is writable: writing creates it)
        try:
            listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        except ClientError as e:
            if _code(e) in _NOT_FOUND:
                return BUCKET_NOT_FOUND
            if _code(e) in _DENIED:
                return ACCESS_DENIED
            raise
        objects = listing.get("Contents") or []
        if prefix and not objects and (spec.read_only or spec.mode == "copy"):
            return PREFIX_NOT_FOUND
        # 3. read one byte of the first object
        if objects:
            try:
                s3.get_object(Bucket=bucket, Key=objects[0]["Key"], Range="bytes=0-0")["Body"].read()
            except ClientError as e:
                if _code(e) in _DENIED:
                    return ACCESS_DENIED
                if _code(e) not in ("InvalidRange", "NoSuchKey"):  # empty object / raced delete
                    raise
        # 4. write (and remove) a marker object, for writable mounts only
        if spec.mode == "mount" and not spec.read_only:
            key = f"{prefix}.gridspawner-write-check-{uuid.uuid4().hex}"
            try:
                s3.put_object(Bucket=bucket, Key=key, Body=b"")
            except ClientError as e:
                if _code(e) in _DENIED:
                    return CANNOT_WRITE
                raise
            try:
                s3.delete_object(Bucket=bucket, Key=key)
            except ClientError:
                pass  # may write but not delete: the mount still works
        return None
    except EndpointConnectionError:
        return ENDPOINT_UNREACHABLE
    except ClientError as e:
        return ACCESS_DENIED if _code(e) in _DENIED else f"{ENDPOINT_UNREACHABLE} (unexpected answer {_code(e) or 'error'})"
    except BotoCoreError:  # timeouts, bad TLS, proxy trouble
        return ENDPOINT_UNREACHABLE


async def check_s3(
    spec: MountSpec,
    creds: S3Secret,
    endpoint: S3Endpoint,
    timeout: float = 10,
    *,
    executor: Executor | None = None,
) -> str | None:
    """`check_s3_sync` in a thread, bounded by ``timeout`` seconds (then: endpoint unreachable).
    The thread itself is bounded by botocore's connect/read timeouts."""
    loop = asyncio.get_running_loop()
    fut = loop.run_in_executor(executor, check_s3_sync, spec, creds, endpoint, timeout)
    try:
        return await asyncio.wait_for(fut, timeout)
    except asyncio.TimeoutError:
        return ENDPOINT_UNREACHABLE
