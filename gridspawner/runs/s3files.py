"""The run store in S3 (``runs_store_url = "s3://bucket/prefix"``): the same files as the
directory store (`files.RunFiles`), as private objects ``<prefix>/<run id>/<name>``.

boto3 is blocking, so every call runs in this store's own thread pool and the event loop
only awaits it. Each S3 request is bounded by botocore's connect and read timeouts
(``runs_store_timeout``) and retried at most ``runs_store_attempts`` times in all
(botocore's "standard" retry mode); the await itself is bounded by their sum, so an
unreachable endpoint is a `RunStoreError` within ``attempts × 2 × timeout`` seconds plus a
few, never a hang. Objects are written without an ACL: they get the bucket's default, which
is private unless the admin made the bucket public.

Credentials: the named environment variables (``runs_store_access_key_env`` /
``runs_store_secret_key_env`` / ``runs_store_session_token_env``) when set, else boto3's
default chain (``AWS_*`` variables, shared files, instance roles). The hub hands those
variables to the service's environment (`service_environment`); they never appear in the
settings, argv, the database or logs.
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from ..vocabulary import CatalogError
from .files import RunFiles, RunStoreError, check_name, check_run_id, default_dir

#: the environment variables of boto3's default credential chain the hub passes on to the
#: service (JupyterHub starts services with an environment of their own, not the hub's)
DEFAULT_CHAIN_ENV = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CA_BUNDLE", "AWS_DEFAULT_REGION", "AWS_REGION",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_EC2_METADATA_DISABLED",
)
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


@dataclass(frozen=True)
class S3StoreConfig:
    """A checked S3 run store setting (`s3_store_config`)."""

    bucket: str
    prefix: str  # "" or without slashes at either end
    endpoint_url: str = ""
    region: str = ""
    access_key_env: str = ""
    secret_key_env: str = ""
    session_token_env: str = ""
    timeout: float = 10.0
    attempts: int = 3

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def call_limit(self) -> float:
        """The longest one store operation may take (all its attempts), in seconds."""
        return self.attempts * 2 * self.timeout + 5


def _env_name(key: str, value: str) -> str:
    if value and (not value.isascii() or not value.replace("_", "a").isalnum() or value[0].isdigit()):
        raise CatalogError(f"c.GridSpawner.{key}", f"{value!r} is not an environment variable name")
    return value


def s3_store_config(settings: Mapping[str, Any], env: Mapping[str, str] | None = None) -> S3StoreConfig | None:
    """The S3 store of the runs settings, None for the directory store (``runs_store_url``
    empty). Raises CatalogError naming the bad key — also when a named credential variable is
    not set in ``env`` (default: this process's environment)."""
    url = str(settings.get("runs_store_url") or "")
    if not url:
        return None
    env = os.environ if env is None else env
    key = "c.GridSpawner.runs_store_url"
    parts = urlsplit(url)
    bucket, prefix = parts.netloc, parts.path.strip("/")
    if parts.scheme != "s3" or not bucket or parts.query or parts.fragment:
        raise CatalogError(key, f"{url!r} is not s3://bucket or s3://bucket/prefix")
    if not (3 <= len(bucket) <= 63) or not all(c.islower() or c.isdigit() or c in ".-" for c in bucket) \
            or not bucket[0].isalnum() or not bucket[-1].isalnum():
        raise CatalogError(key, f"{bucket!r} is not a valid bucket name (3-63 of a-z 0-9 . -)")
    if "//" in prefix or any(p in (".", "..") for p in prefix.split("/")):
        raise CatalogError(key, f"the prefix {prefix!r} has an empty, '.' or '..' part")
    endpoint = str(settings.get("runs_store_endpoint_url") or "")
    if endpoint and (urlsplit(endpoint).scheme not in ("http", "https") or not urlsplit(endpoint).netloc):
        raise CatalogError("c.GridSpawner.runs_store_endpoint_url", f"{endpoint!r} is not an http(s) URL")
    names = {k: _env_name(k, str(settings.get(k) or ""))
             for k in ("runs_store_access_key_env", "runs_store_secret_key_env", "runs_store_session_token_env")}
    if bool(names["runs_store_access_key_env"]) != bool(names["runs_store_secret_key_env"]):
        raise CatalogError("c.GridSpawner.runs_store_secret_key_env" if names["runs_store_access_key_env"]
                           else "c.GridSpawner.runs_store_access_key_env",
                           "runs_store_access_key_env and runs_store_secret_key_env go together")
    for k, name in names.items():
        if name and not env.get(name):
            raise CatalogError(f"c.GridSpawner.{k}", f"the environment variable {name} is not set")
    timeout = settings.get("runs_store_timeout", 10.0)
    if not isinstance(timeout, (int, float)) or not 0 < timeout <= 300:
        raise CatalogError("c.GridSpawner.runs_store_timeout", f"{timeout!r} is not a number of seconds in (0, 300]")
    attempts = settings.get("runs_store_attempts", 3)
    if not isinstance(attempts, int) or not 1 <= attempts <= 10:
        raise CatalogError("c.GridSpawner.runs_store_attempts", f"{attempts!r} is not a whole number from 1 to 10")
    return S3StoreConfig(bucket, prefix, endpoint, str(settings.get("runs_store_region") or ""),
                         names["runs_store_access_key_env"], names["runs_store_secret_key_env"],
                         names["runs_store_session_token_env"], float(timeout), attempts)


def service_environment(settings: Mapping[str, Any], env: Mapping[str, str] | None = None) -> dict[str, str]:
    """What of the hub's environment the service needs for the S3 run store: the named
    credential variables, and boto3's default-chain variables where none are named."""
    cfg = s3_store_config(settings, env)
    env = os.environ if env is None else env
    if cfg is None:
        return {}
    names = [n for n in (cfg.access_key_env, cfg.secret_key_env, cfg.session_token_env) if n]
    return {n: env[n] for n in [*names, *DEFAULT_CHAIN_ENV] if n in env}


class S3RunFiles:
    """The run store in S3 (see the module's docstring); the interface of `files.RunFiles`."""

    def __init__(self, config: S3StoreConfig):
        self.config = config
        self.location = config.location
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="gs-runs-s3")
        self._client: Any = None
        self._lock = threading.Lock()

    def _s3(self) -> Any:
        with self._lock:  # boto3 sessions are not thread-safe; the client is
            if self._client is None:
                import boto3
                from botocore.config import Config

                cfg, env = self.config, os.environ
                kwargs: dict[str, Any] = {}
                if cfg.access_key_env:
                    kwargs.update(aws_access_key_id=env.get(cfg.access_key_env),
                                  aws_secret_access_key=env.get(cfg.secret_key_env),
                                  aws_session_token=env.get(cfg.session_token_env) if cfg.session_token_env else None)
                self._client = boto3.session.Session().client(
                    "s3", endpoint_url=cfg.endpoint_url or None, region_name=cfg.region or None,
                    config=Config(connect_timeout=cfg.timeout, read_timeout=cfg.timeout,
                                  retries={"max_attempts": cfg.attempts, "mode": "standard"},
                                  s3={"addressing_style": "path"} if cfg.endpoint_url else None),
                    **kwargs)
            return self._client

    def key(self, run_id: str, name: str = "") -> str:
        """The object key of ``name`` of the run (``name`` empty: the run's key prefix)."""
        check_run_id(run_id)
        if name:
            check_name(name)
        base = f"{self.config.prefix}/{run_id}/" if self.config.prefix else f"{run_id}/"
        return base + name

    async def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(self._pool, fn), self.config.call_limit)
        except asyncio.TimeoutError:
            raise RunStoreError(f"the run store {self.location} did not answer ({what}) within "
                                f"{self.config.call_limit:g} s") from None
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            raise RunStoreError(f"the run store {self.location} refused to {what}: {code or e}") from None
        except BotoCoreError as e:  # unreachable endpoint, timeouts, no credentials
            raise RunStoreError(f"the run store {self.location} is unreachable ({what}): {e}") from None

    async def ensure(self) -> None:
        """Nothing to make; the bucket is the admin's (its absence shows at the first use)."""

    async def write(self, run_id: str, name: str, data: bytes) -> None:
        key = self.key(run_id, name)
        await self._call(f"write {name}", lambda: self._s3().put_object(Bucket=self.config.bucket, Key=key, Body=data))

    async def read(self, run_id: str, name: str) -> bytes | None:
        key = self.key(run_id, name)

        def get() -> bytes | None:
            from botocore.exceptions import ClientError

            try:
                return self._s3().get_object(Bucket=self.config.bucket, Key=key)["Body"].read()
            except ClientError as e:
                if str(e.response.get("Error", {}).get("Code", "")) in _NOT_FOUND:
                    return None
                raise

        return await self._call(f"read {name}", get)

    async def exists(self, run_id: str, name: str) -> bool:
        key = self.key(run_id, name)

        def head() -> bool:
            from botocore.exceptions import ClientError

            try:
                self._s3().head_object(Bucket=self.config.bucket, Key=key)
                return True
            except ClientError as e:
                if str(e.response.get("Error", {}).get("Code", "")) in _NOT_FOUND:
                    return False
                raise

        return await self._call(f"look up {name}", head)

    async def remove(self, run_id: str) -> None:
        prefix = self.key(run_id)

        def delete() -> None:
            s3 = self._s3()
            token = None
            while True:
                page = s3.list_objects_v2(Bucket=self.config.bucket, Prefix=prefix,
                                          **({"ContinuationToken": token} if token else {}))
                for obj in page.get("Contents") or ():
                    s3.delete_object(Bucket=self.config.bucket, Key=obj["Key"])
                token = page.get("NextContinuationToken")
                if not token:
                    return

        await self._call("delete the run's files", delete)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def open_store(settings: Mapping[str, Any], db_url: str) -> RunFiles | S3RunFiles:
    """The run store the settings name: S3 (``runs_store_url``) or the directory
    ``runs_dir`` (default: `files.default_dir`). Raises CatalogError naming a bad key."""
    s3 = s3_store_config(settings)
    if s3 is not None:
        return S3RunFiles(s3)
    return RunFiles(settings.get("runs_dir") or default_dir(db_url))
