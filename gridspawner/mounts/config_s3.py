"""The S3 part of ``c.GridSpawner.storage``: endpoints (``storage['s3'][name]``), their STS
settings for per-user credentials, and ``notebook_storage`` (a bucket on one of them).

Admin S3 keys are never given here, only the *names* of environment variables holding them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from ..vocabulary import (
    BUCKET,
    HTTP_URL,
    REGION,
    CatalogError,
    check_keys,
    choice_list,
    require_dict,
    require_int,
    require_text,
)
from .config_fields import NamePattern, name_patterns, username_template

S3_CREDENTIAL_SOURCES = ("sts", "keys")
STS_METHODS = ("assume_role", "federation_token")

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_ROLE_ARN = re.compile(r"arn:[a-z-]+:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}")


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class STSSettings:
    """How the hub turns admin credentials into per-user credentials."""

    method: str = "assume_role"  # or "federation_token"
    role_arn: str | None = None
    access_key_env: str | None = None  # None: boto3's default credential chain
    secret_key_env: str | None = None
    duration: int = 43200  # seconds
    url: str | None = None  # STS endpoint; None: the S3 endpoint's url
    #: seconds before the credentials expire at which the hub renews them (None: a third
    #: of their lifetime)
    renew_before: int | None = None

    def renew_margin(self, lifetime: float) -> float:
        """Seconds before expiry to renew credentials that live ``lifetime`` seconds."""
        margin = self.renew_before if self.renew_before is not None else lifetime / 3
        return min(margin, lifetime)


@dataclass(frozen=True)
class S3Endpoint:
    name: str
    url: str
    region: str = "us-east-1"
    display_name: str = ""
    buckets: tuple[NamePattern, ...] = ()
    user_prefix: str = ""  # template; every prefix on this endpoint must start with it
    credentials: tuple[str, ...] = ("keys",)
    sts: STSSettings | None = None
    path_style: bool = True
    provider: str = "Other"  # rclone's s3 provider name

    def allows_bucket(self, bucket: str, username: str) -> bool:
        return any(p.matches(bucket, username) for p in self.buckets)

    def prefix_for(self, username: str) -> str:
        return self.user_prefix.format(username=username) if self.user_prefix else ""


@dataclass(frozen=True)
class NotebookStorage:
    endpoint: str
    bucket: str
    prefix: str = "{username}/"


# --------------------------------------------------------------------------- parsing


def _parse_url(value: Any, key: str) -> str:
    if not isinstance(value, str) or not HTTP_URL.fullmatch(value):
        raise CatalogError(key, f"must be an http(s) URL such as 'https://s3.example.edu' (got {value!r})")
    return value.rstrip("/")


def _env(value: Any, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        raise CatalogError(key, "must be the NAME of an environment variable holding the secret, never the secret itself")
    return value


def parse_s3_endpoint(name: str, conf: Any, key: str) -> S3Endpoint:
    conf = require_dict(conf, key)
    check_keys(conf, ("url", "region", "display_name", "buckets", "user_prefix", "credentials", "sts", "path_style", "provider"), key)
    if "url" not in conf:
        raise CatalogError(f"{key}.url", "is required")
    url = _parse_url(conf["url"], f"{key}.url")
    region = conf.get("region", "us-east-1")
    if not isinstance(region, str) or not REGION.fullmatch(region):
        raise CatalogError(f"{key}.region", f"must be a region name such as 'us-east-1' (got {region!r})")
    if "buckets" not in conf:
        raise CatalogError(f"{key}.buckets", "is required: the bucket names (globs or 're:' regexes) users may mount")
    buckets = name_patterns(conf["buckets"], f"{key}.buckets")
    user_prefix = username_template(conf.get("user_prefix"), f"{key}.user_prefix", default="")
    if user_prefix and (user_prefix.startswith("/") or ".." in user_prefix):
        raise CatalogError(f"{key}.user_prefix", "must be relative and must not contain '..'")
    creds = choice_list(conf.get("credentials", ["keys"]), S3_CREDENTIAL_SOURCES, f"{key}.credentials")
    sts = None
    if conf.get("sts") is not None:
        sts = _parse_sts(conf["sts"], f"{key}.sts")
    if "sts" in creds and sts is None:
        raise CatalogError(f"{key}.sts", "is required when credentials include 'sts'")
    path_style = conf.get("path_style", True)
    if not isinstance(path_style, bool):
        raise CatalogError(f"{key}.path_style", f"must be true or false (got {path_style!r})")
    provider = conf.get("provider", "Other")
    if not isinstance(provider, str) or not re.fullmatch(r"[A-Za-z0-9]{1,32}", provider):
        raise CatalogError(f"{key}.provider", f"must be an rclone S3 provider name such as 'AWS', 'Ceph', 'Minio', 'Other' (got {provider!r})")
    return S3Endpoint(
        name=name,
        url=url,
        region=region,
        display_name=require_text(conf.get("display_name"), f"{key}.display_name", name),
        buckets=buckets,
        user_prefix=user_prefix,
        credentials=creds,
        sts=sts,
        path_style=path_style,
        provider=provider,
    )


def _parse_sts(conf: Any, key: str) -> STSSettings:
    conf = require_dict(conf, key)
    # no key may hold a secret itself (access_key, secret_key …): only the names of variables
    check_keys(conf, ("method", "role_arn", "access_key_env", "secret_key_env", "duration", "url", "renew_before"), key)
    method = conf.get("method", "assume_role")
    if method not in STS_METHODS:
        raise CatalogError(f"{key}.method", f"must be one of: {', '.join(STS_METHODS)} (got {method!r})")
    role_arn = conf.get("role_arn")
    if method == "assume_role":
        if not isinstance(role_arn, str) or not _ROLE_ARN.fullmatch(role_arn):
            raise CatalogError(f"{key}.role_arn", f"must be an IAM role ARN such as 'arn:aws:iam::123456789012:role/name' (got {role_arn!r})")
    elif role_arn is not None:
        raise CatalogError(f"{key}.role_arn", "is only used with method 'assume_role'")
    akey = _env(conf.get("access_key_env"), f"{key}.access_key_env")
    skey = _env(conf.get("secret_key_env"), f"{key}.secret_key_env")
    if (akey is None) != (skey is None):
        raise CatalogError(f"{key}.{'secret_key_env' if skey is None else 'access_key_env'}", "set both access_key_env and secret_key_env, or neither")
    duration = require_int(conf.get("duration", 43200), f"{key}.duration", 900, 129600)
    url = _parse_url(conf["url"], f"{key}.url") if conf.get("url") is not None else None
    renew_before = None
    if conf.get("renew_before") is not None:
        renew_before = require_int(conf["renew_before"], f"{key}.renew_before", 1, duration - 1)
    return STSSettings(method=method, role_arn=role_arn, access_key_env=akey, secret_key_env=skey, duration=duration,
                       url=url, renew_before=renew_before)


def parse_notebook_storage(conf: Any, s3: Mapping[str, S3Endpoint], key: str) -> NotebookStorage:
    conf = require_dict(conf, key)
    check_keys(conf, ("endpoint", "bucket", "prefix"), key)
    ep = conf.get("endpoint")
    if ep not in s3:
        raise CatalogError(f"{key}.endpoint", f"must name one of the s3 endpoints: {', '.join(s3) or 'none defined'} (got {ep!r})")
    bucket = conf.get("bucket")
    if not isinstance(bucket, str) or not BUCKET.fullmatch(bucket):
        raise CatalogError(f"{key}.bucket", f"must be a valid bucket name (got {bucket!r})")
    prefix = username_template(conf.get("prefix"), f"{key}.prefix", default="{username}/")
    if prefix.startswith("/") or ".." in prefix:
        raise CatalogError(f"{key}.prefix", "must be relative and must not contain '..'")
    return NotebookStorage(endpoint=ep, bucket=bucket, prefix=prefix)
