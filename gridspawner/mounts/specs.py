"""``user_options["mounts"]`` → validated `MountSpec` values, secrets split off. Pure.

A mount object (form rows and REST use the same keys)::

    {"type": "s3", "endpoint": "campus", "bucket": "lab-data", "prefix": "alice/run1/",
     "target": "run1", "mode": "mount", "read_only": true,
     "credentials": "keys", "access_key": "…", "secret_key": "…"}
    {"type": "ssh", "host": "nas", "path": "/export/home/alice", "target": "home",
     "mode": "copy", "read_only": false, "auth": "password", "password": "…"}

`parse_mounts` returns ``(specs, secrets)``: the specs carry no secret and are JSON-safe
(`MountSpec.to_dict`/`from_dict`), so they may live in user_options and spawner state;
``secrets`` maps a mount's index to its secret fields and must stay in memory only.
Error messages never quote a secret value.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any, Iterable, Mapping

from ..vocabulary import BUCKET, BUCKET_LENGTH, LOGIN, MOUNT_TARGET, OptionsError, shown
from .config import StorageConfig

#: keys whose values are secrets: split off, never echoed in an error message
SECRET_KEYS = ("access_key", "secret_key", "password")
MOUNT_KEYS = (
    "type", "endpoint", "host", "bucket", "prefix", "path", "user", "target", "mode", "read_only",
    "credentials", "auth", *SECRET_KEYS,
)
TYPES = ("s3", "ssh")
MODES = ("mount", "copy")

#: one prefix / path segment: no spaces, quotes, shell or glob characters
_SEGMENT = re.compile(r"[A-Za-z0-9_@+=,~-][A-Za-z0-9._@+=,~-]{0,254}")
_MAX_PREFIX = 512
_MAX_PATH = 1024
#: AWS-style access key ids and secrets (also Ceph/MinIO generated ones)
_ACCESS_KEY = re.compile(r"[A-Za-z0-9._-]{1,128}")
_SECRET_KEY = re.compile(r"[A-Za-z0-9/+=._~-]{1,256}")
_MAX_PASSWORD = 1024


@dataclass(frozen=True)
class MountSpec:
    """One validated mount, without secrets. ``source`` fields by type:
    s3: endpoint, bucket, prefix ("" or ending in "/"); ssh: host, path, user."""

    type: str
    target: str
    mode: str = "mount"
    read_only: bool = False
    endpoint: str | None = None
    bucket: str | None = None
    prefix: str = ""
    host: str | None = None
    path: str | None = None
    user: str | None = None
    credentials: str | None = None  # s3: "sts" | "keys"
    auth: str | None = None  # ssh: "key" | "password"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MountSpec":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def source(self) -> str:
        """Human-readable source, for progress messages and logs (never a secret)."""
        if self.type == "s3":
            return f"s3://{self.bucket}/{self.prefix}"
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.path}"


def strip_secrets(options: Any) -> tuple[Any, dict[int, dict[str, str]]]:
    """A copy of user_options with every secret key removed from ``mounts`` rows, and the
    secrets by row index. Safe on any input (non-dicts are returned as they are)."""
    if not isinstance(options, Mapping) or not isinstance(options.get("mounts"), list):
        return options, {}
    secrets: dict[int, dict[str, str]] = {}
    rows = []
    for i, row in enumerate(options["mounts"]):
        if isinstance(row, Mapping):
            found = {k: row[k] for k in SECRET_KEYS if k in row}
            if found:
                secrets[i] = found
            row = {k: v for k, v in row.items() if k not in SECRET_KEYS}
        rows.append(row)
    clean = dict(options)
    clean["mounts"] = rows
    return clean, secrets


def pin_typed_choices(clean: Any, specs: Iterable[MountSpec]) -> Any:
    """``clean`` (options without secrets, `strip_secrets`) with every mount row naming the
    credentials / auth its validated spec chose. A row that left ``auth`` out got
    ``password`` from its typed password: once the password is stripped, the stored row must
    still say so, or a later start would fall back to the hub's key."""
    if not isinstance(clean, Mapping) or not isinstance(clean.get("mounts"), list):
        return clean
    rows = list(clean["mounts"])
    for i, spec in enumerate(specs):
        if i < len(rows) and isinstance(rows[i], Mapping):
            row = dict(rows[i])
            if spec.credentials is not None:
                row["credentials"] = spec.credentials
            if spec.auth is not None:
                row["auth"] = spec.auth
            rows[i] = row
    return {**clean, "mounts": rows}


def typed_secret_fields(options: Any) -> list[str]:
    """The fields of secrets only a user can type that ``options``' mounts need: S3 rows with
    ``credentials: keys`` → ``mounts[i].secret_key``, SSH rows with ``auth: password`` →
    ``mounts[i].password`` (rows as `pin_typed_choices` stores them)."""
    if not isinstance(options, Mapping) or not isinstance(options.get("mounts"), list):
        return []
    out = []
    for i, row in enumerate(options["mounts"]):
        if not isinstance(row, Mapping):
            continue
        if row.get("type") == "s3" and row.get("credentials") == "keys":
            out.append(f"mounts[{i}].secret_key")
        elif row.get("type") == "ssh" and row.get("auth") == "password":
            out.append(f"mounts[{i}].password")
    return out


def parse_mounts(
    raw: Any, storage: StorageConfig, groups: Iterable[str], username: str
) -> tuple[tuple[MountSpec, ...], dict[int, dict[str, str]]]:
    """Validate ``raw`` (user_options["mounts"]) for ``username`` in ``groups``.

    Returns ``(specs, secrets)``; raises OptionsError with keys ``mounts`` or
    ``mounts[i].field``. Secrets may come in ``raw`` (then they are split off) — callers that
    already stripped them (`strip_secrets`) pass them back through their own channel.
    """
    groups = list(groups)
    if raw is None or raw == []:
        return (), {}
    if not isinstance(raw, list):
        raise OptionsError({"mounts": "must be a list of mount objects"})
    if not storage.enabled:
        raise OptionsError({"mounts": "data mounts are not enabled on this hub"})
    limit = storage.max_mounts_for(groups)
    if len(raw) > limit:
        raise OptionsError({"mounts": f"at most {limit} mount{'s' if limit != 1 else ''} allowed for you (got {len(raw)})"})
    errors: dict[str, str] = {}
    specs: list[MountSpec] = []
    secrets: dict[int, dict[str, str]] = {}
    targets: dict[str, int] = {}
    for i, row in enumerate(raw):
        spec, secret = _parse_one(i, row, storage, groups, username, errors)
        if spec is not None:
            folded = spec.target.lower()
            if folded in targets:
                errors[f"mounts[{i}].target"] = f"target {spec.target!r} is already used by mount {targets[folded] + 1}"
            else:
                targets[folded] = i
            specs.append(spec)
        if secret:
            secrets[i] = secret
    if errors:
        raise OptionsError(errors)
    return tuple(specs), secrets


def _parse_one(i: int, row: Any, storage: StorageConfig, groups: list[str], username: str, errors: dict):
    key = f"mounts[{i}]"
    if not isinstance(row, Mapping):
        errors[key] = "must be an object with type, source, target, mode and read_only"
        return None, {}
    n = len(errors)
    for k in row:
        if k not in MOUNT_KEYS:
            name = k if isinstance(k, str) and k.isprintable() and len(k) <= 40 else shown(k)
            errors[f"{key}.{name}"] = f"unknown key; expected some of: {', '.join(MOUNT_KEYS)}"
    mtype = row.get("type")
    if mtype not in TYPES:
        errors[f"{key}.type"] = f"must be one of: {', '.join(TYPES)} (got {shown(mtype)})"
        return None, {}
    target = row.get("target")
    if not isinstance(target, str) or not MOUNT_TARGET.fullmatch(target) or target in (".", ".."):
        errors[f"{key}.target"] = (
            "must be a name of 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            f" (got {shown(target)})"
        )
    mode = row.get("mode", "mount")
    if mode not in MODES:
        errors[f"{key}.mode"] = f"must be one of: {', '.join(MODES)} (got {shown(mode)})"
    read_only = row.get("read_only", False)
    if not isinstance(read_only, bool):
        errors[f"{key}.read_only"] = f"must be true or false (got {shown(read_only)})"
    if mtype == "s3":
        fields_ = _parse_s3(key, row, storage, groups, username, errors)
    else:
        fields_ = _parse_ssh(key, row, storage, groups, username, errors)
    secret = {k: row[k] for k in SECRET_KEYS if k in row}
    if len(errors) > n:
        return None, secret
    return MountSpec(type=mtype, target=target, mode=mode, read_only=read_only, **fields_), secret


def _pick(key: str, field_: str, value: Any, allowed: list[str], what: str, errors: dict) -> str | None:
    if value in (None, "") and len(allowed) == 1:
        return allowed[0]
    if not allowed:
        errors[f"{key}.{field_}"] = f"no {what} is available to you"
        return None
    if not isinstance(value, str) or value not in allowed:
        errors[f"{key}.{field_}"] = f"must be one of: {', '.join(allowed)} (got {shown(value)})"
        return None
    return value


def _check_relative(value: str, limit: int) -> bool:
    if len(value) > limit or value.startswith("/") or "//" in value:
        return False
    return all(_SEGMENT.fullmatch(s) and s not in (".", "..") for s in value.strip("/").split("/") if s) and ".." not in value


def _parse_s3(key, row, storage: StorageConfig, groups, username, errors) -> dict:
    if row.get("host") is not None or row.get("path") is not None:
        errors[f"{key}.type"] = "an s3 mount takes endpoint, bucket and prefix (not host/path)"
    name = _pick(key, "endpoint", row.get("endpoint"), storage.s3_for(groups), "S3 storage", errors)
    ep = storage.s3.get(name) if name else None
    bucket = row.get("bucket")
    if not isinstance(bucket, str) or not (BUCKET_LENGTH[0] <= len(bucket) <= BUCKET_LENGTH[1]) or not BUCKET.fullmatch(bucket):
        errors[f"{key}.bucket"] = f"must be a bucket name: 3-63 lower-case letters, digits, '.' or '-' (got {shown(bucket)})"
        bucket = None
    elif ep is not None and not ep.allows_bucket(bucket, username):
        errors[f"{key}.bucket"] = f"bucket {bucket!r} is not allowed on {ep.display_name}"
    prefix = row.get("prefix", "")
    if prefix is None:
        prefix = ""
    if not isinstance(prefix, str) or not _check_relative(prefix, _MAX_PREFIX):
        errors[f"{key}.prefix"] = (
            "must be a relative key prefix of letters, digits and . _ - @ + = , ~ separated by '/'"
            f" (no '..', no spaces; got {shown(prefix)})"
        )
        prefix = None
    else:
        prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        if ep is not None and ep.user_prefix:
            mine = ep.prefix_for(username)
            if not prefix.startswith(mine):
                errors[f"{key}.prefix"] = f"must start with {mine!r} on {ep.display_name}"
    creds = row.get("credentials")
    offered = list(ep.credentials) if ep else []
    if creds in (None, "") and offered:
        creds = offered[0]
    if ep is not None and creds not in offered:
        errors[f"{key}.credentials"] = f"must be one of: {', '.join(offered)} (got {shown(creds)})"
    if creds == "keys":
        ak, sk = row.get("access_key"), row.get("secret_key")
        if not isinstance(ak, str) or not _ACCESS_KEY.fullmatch(ak):
            errors[f"{key}.access_key"] = "enter the access key id (letters, digits, '.', '_' or '-')"
        if not isinstance(sk, str) or not _SECRET_KEY.fullmatch(sk):
            errors[f"{key}.secret_key"] = "enter the secret key (letters, digits and / + = . _ ~ -)"
    elif row.get("access_key") or row.get("secret_key"):
        errors[f"{key}.access_key"] = "keys are only used with credentials 'keys'"
    return {"endpoint": name, "bucket": bucket, "prefix": prefix or "", "credentials": creds}


def _parse_ssh(key, row, storage: StorageConfig, groups, username, errors) -> dict:
    if row.get("bucket") is not None or row.get("endpoint") is not None:
        errors[f"{key}.type"] = "an ssh mount takes host and path (not endpoint/bucket)"
    name = _pick(key, "host", row.get("host"), storage.ssh_for(groups), "SSH storage host", errors)
    host = storage.ssh.get(name) if name else None
    path = row.get("path")
    if not isinstance(path, str) or not path.startswith("/") or not (path == "/" or _check_relative(path[1:], _MAX_PATH)):
        errors[f"{key}.path"] = (
            "must be an absolute path of letters, digits and . _ - @ + = , ~ separated by '/'"
            f" (no '..', no spaces; got {shown(path)})"
        )
        path = None
    else:
        path = "/" + path.strip("/")
        if host is not None and not host.allows_path(path, username):
            errors[f"{key}.path"] = f"path {path!r} is not allowed on {host.display_name}"
    user = row.get("user")
    if host is not None:
        fixed = host.login_for(username)
        if fixed is not None:
            if user not in (None, "", fixed):
                errors[f"{key}.user"] = f"is fixed to {fixed!r} on {host.display_name}"
            user = fixed
        if not isinstance(user, str) or not LOGIN.fullmatch(user):
            errors[f"{key}.user"] = f"must be a login name on {host.display_name} (got {shown(user)})"
    auth = row.get("auth")
    offered = list(host.auth) if host else []
    if auth in (None, "") and offered:
        auth = "password" if row.get("password") and "password" in offered else offered[0]
    if host is not None and auth not in offered:
        errors[f"{key}.auth"] = f"must be one of: {', '.join(offered)} (got {shown(auth)})"
    if auth == "password":
        pw = row.get("password")
        if not isinstance(pw, str) or not pw or len(pw) > _MAX_PASSWORD or any(c in pw for c in "\x00\r\n"):
            errors[f"{key}.password"] = "enter the password (one line, at most 1024 characters)"
    elif row.get("password"):
        errors[f"{key}.password"] = "a password is only used with auth 'password'"
    return {"host": name, "path": path, "user": user, "auth": auth}
