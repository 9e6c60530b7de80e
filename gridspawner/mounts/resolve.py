"""Validated mounts + the user's secrets → `ResolvedMount` values with working credentials.

`resolve_mounts` is what the spawner runs at submit time (form) and before a launch (REST):
per mount it gets the credentials (the typed keys / password, per-user STS credentials, or
the hub-managed SSH key), then checks every mount concurrently (`s3check`, `sshcheck`)
under the admin's ``check_timeout``. Any failure becomes an `OptionsError` naming the
field (``mounts[i].bucket`` …), so the form shows it next to the input and REST answers 400.

The result carries secrets: keep it in memory (`LaunchContext.mounts`), never in state or
logs (`gridspawner.preparation` keeps it on the spawner until ``start()``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..vocabulary import OptionsError
from . import s3check, sshcheck
from .config import StorageConfig
from .resolved import ResolvedMount, S3Secret, S3Source, SSHSecret, SSHSource
from .keys import KeyStore
from .specs import MountSpec
from .sts import STSError, scoped_credentials

NO_KEY = "the hub has no SSH key for you yet; open the spawn form to see it and add it to the server"


def _known_hosts_text(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _s3_error(spec: MountSpec, message: str) -> dict[str, str]:
    """The fields an S3 check's message belongs to: refused credentials at what the user
    chose them with (the typed keys, or the hub's temporary credentials), the rest where
    `s3check.field_for` puts it."""
    if message == s3check.ACCESS_DENIED:
        fields = ("access_key", "secret_key") if spec.credentials == "keys" else ("credentials",)
        return {f: message for f in fields}
    return {s3check.field_for(message): message}


async def _resolve_one(
    i: int, spec: MountSpec, secret: Mapping[str, str], storage: StorageConfig, username: str,
    env: Mapping[str, str] | None, check: bool,
) -> tuple[ResolvedMount | None, tuple[str, str] | None]:
    """(mount, None) or (None, {field: message})."""
    timeout = storage.check_timeout
    if spec.type == "s3":
        ep = storage.s3[spec.endpoint]
        if spec.credentials == "sts":
            try:
                creds = await scoped_credentials(
                    ep, username, spec.bucket, spec.prefix, spec.read_only or spec.mode == "copy", env=env, timeout=timeout
                )
            except STSError as e:
                return None, {"credentials": str(e)}
        else:
            ak, sk = secret.get("access_key"), secret.get("secret_key")
            if not ak or not sk:
                return None, {"access_key": "enter the access key id and secret key again"}
            creds = S3Secret(access_key=ak, secret_key=sk)
        if check:
            message = await s3check.check_s3(spec, creds, ep, timeout)
            if message:
                return None, _s3_error(spec, message)
        source = S3Source(url=ep.url, bucket=spec.bucket, prefix=spec.prefix, region=ep.region,
                          provider=ep.provider, path_style=ep.path_style)
        return ResolvedMount(i, spec.target, spec.mode, spec.read_only, source, creds), None

    host = storage.ssh[spec.host]
    if spec.auth == "password":
        password = secret.get("password")
        if not password:
            return None, {"password": "enter the password again"}
        ssh_secret = SSHSecret(password=password)
        client_key: Any = None
    else:
        if storage.key_dir is None:
            return None, {"auth": "the hub has no key directory configured"}
        store = KeyStore(storage.key_dir)
        try:
            text = await asyncio.get_running_loop().run_in_executor(None, store.private_key_text, username)
        except PermissionError:
            return None, {"auth": "the hub's key for you is not usable; ask the hub admin"}
        if not text:
            return None, {"auth": NO_KEY}
        ssh_secret = SSHSecret(private_key=text)
        client_key = None
        if check:
            import asyncssh

            client_key = asyncssh.import_private_key(text)
    if check:
        if client_key is not None:
            message = await sshcheck.check_ssh(host, spec.user, spec.path, client_key=client_key, timeout=timeout)
        else:
            message = await sshcheck.check_ssh(host, spec.user, spec.path, password=ssh_secret.password, timeout=timeout)
        if message:
            field = sshcheck.field_for(message)
            if field == "password" and spec.auth != "password":
                field = "auth"
            return None, {field: message}
    known = await asyncio.get_running_loop().run_in_executor(None, _known_hosts_text, host.known_hosts)
    source = SSHSource(address=host.address, user=spec.user, path=spec.path, port=host.port, known_hosts=known)
    return ResolvedMount(i, spec.target, spec.mode, spec.read_only, source, ssh_secret), None


def check_limit(storage: StorageConfig) -> float:
    """The most seconds `resolve_mounts` takes: each mount's credentials and its check have
    their own ``check_timeout`` (STS + S3 check, or SSH connect + login), all run at once."""
    return storage.check_timeout * 2 + 5


async def resolve_mounts(
    specs: Sequence[MountSpec],
    secrets: Mapping[int, Mapping[str, str]],
    storage: StorageConfig,
    username: str,
    *,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> tuple[ResolvedMount, ...]:
    """Credentials for, and (``check``) a live check of, every mount — concurrently, each
    bounded by ``storage.check_timeout`` and all together by a little more. ``secrets`` maps
    a mount's index to its typed secret fields. Raises OptionsError (``mounts[i].field``)."""
    if not specs:
        return ()

    async def one(i: int, spec: MountSpec):
        try:
            return await _resolve_one(i, spec, secrets.get(i, {}), storage, username, env, check)
        except Exception as e:  # noqa: BLE001 - a broken check must still end as a field error
            return None, {"type": f"could not check this mount ({type(e).__name__})"}

    limit = check_limit(storage)
    try:
        results = await asyncio.wait_for(asyncio.gather(*(one(i, s) for i, s in enumerate(specs))), limit)
    except asyncio.TimeoutError:
        raise OptionsError({"mounts": f"the storage checks did not finish within {limit:g} s; try again"}) from None
    errors = {f"mounts[{i}].{field}": message for i, (_, err) in enumerate(results) if err for field, message in err.items()}
    if errors:
        raise OptionsError(errors)
    return tuple(m for m, _ in results)
