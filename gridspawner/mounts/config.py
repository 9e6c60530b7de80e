"""The admin's storage settings, ``c.GridSpawner.storage`` (a dict), parsed once at start-up.

Every mistake raises `CatalogError` naming the exact key, e.g.
``c.GridSpawner.storage['s3']['campus'].url``. Secrets never appear here: admin S3 keys are
given as the *names* of environment variables the hub reads when it asks STS for per-user
credentials (or left out: boto3's default chain, e.g. an instance role).

Shape (every key optional except each endpoint's ``url`` and each host's ``address``)::

    c.GridSpawner.storage = {
        "tool": "rclone",              # host-side FUSE tool: rclone | s3fs (S3) | sshfs (SSH)
        "max_mounts": 4,               # per server, unless an access rule says otherwise
        "check_timeout": 10,           # seconds for the submit-time checks
        "key_dir": "/srv/jupyterhub/ssh-keys",   # hub-managed per-user SSH keys
        "s3": {
            "campus": {
                "display_name": "Campus S3",
                "url": "https://s3.example.edu",
                "region": "us-east-1",
                "buckets": ["lab-*", "re:proj-[0-9]{4}"],   # fullmatch globs or "re:" regexes
                "user_prefix": "{username}/",   # every prefix must start with this
                "credentials": ["sts", "keys"], # which sources a user may pick
                "sts": {
                    "role_arn": "arn:aws:iam::123456789012:role/jupyter-users",
                    "access_key_env": "CAMPUS_S3_ADMIN_KEY",
                    "secret_key_env": "CAMPUS_S3_ADMIN_SECRET",
                    "duration": 43200,
                },
            },
        },
        "ssh": {
            "nas": {
                "address": "nas.example.edu", "port": 22,
                "known_hosts": "/etc/gridspawner/storage_known_hosts",
                "paths": ["/export/home/{username}", "/export/home/{username}/*"],
                "user": "{username}",
                "auth": ["key", "password"],
            },
        },
        "access": {                       # group → what it may use; "*" = every user
            "*": {"s3": ["campus"], "ssh": []},
            "physics": {"ssh": ["nas"], "max_mounts": 8},
        },
        "notebook_storage": {"endpoint": "campus", "bucket": "notebooks", "prefix": "{username}/"},
        "kubernetes": {"copy_image": "docker.io/rclone/rclone:1.68", "csi": {...}},
    }

The parts live next to this module: ``config_s3`` (endpoints, STS, notebook storage),
``config_ssh`` (hosts), ``config_access`` (group rules), ``config_fields`` (the checks
they share). Import every name from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from ..vocabulary import (
    IMAGE_REF,
    NAME,
    CatalogError,
    check_keys,
    check_name,
    require_dict,
    require_int,
    require_number,
    require_text,
    subkey,
)
from .config_access import Access, parse_access
from .config_fields import NamePattern
from .config_s3 import (
    S3_CREDENTIAL_SOURCES,
    STS_METHODS,
    NotebookStorage,
    S3Endpoint,
    STSSettings,
    parse_notebook_storage,
    parse_s3_endpoint,
)
from .config_ssh import SSH_AUTH, SSHStorageHost, parse_ssh_host
from .hostcmd import TOOLS
from .k8s import parse_csi_template

__all__ = [
    "ROOT",
    "S3_CREDENTIAL_SOURCES",
    "SSH_AUTH",
    "STS_METHODS",
    "TOOLS",
    "Access",
    "KubernetesMounts",
    "NamePattern",
    "NotebookStorage",
    "S3Endpoint",
    "SSHStorageHost",
    "STSSettings",
    "StorageConfig",
    "parse_storage",
]



# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class KubernetesMounts:
    """How mounts become Kubernetes objects (see `gridspawner.mounts.k8s`)."""

    copy_image: str = "docker.io/rclone/rclone:1.68"
    #: mount type ("s3" | "ssh") → CSI volume template (a dict with ``driver`` etc.)
    csi: Mapping[str, Mapping] = field(default_factory=dict)
    copy_resources: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StorageConfig:
    s3: Mapping[str, S3Endpoint] = field(default_factory=dict)
    ssh: Mapping[str, SSHStorageHost] = field(default_factory=dict)
    max_mounts: int = 4
    #: the FUSE tool for mode "mount" on hosts: "rclone" for both types, "s3fs" for S3
    #: mounts (SSH: rclone), "sshfs" for SSH mounts (S3: rclone); see `hostcmd.mount_fragment`
    tool: str = "rclone"
    check_timeout: float = 10.0
    key_dir: str | None = None
    access: Mapping[str, Access] | None = None  # None: everyone may use everything
    notebook_storage: NotebookStorage | None = None
    kubernetes: KubernetesMounts = field(default_factory=KubernetesMounts)
    data_dir: str = "data"

    @property
    def enabled(self) -> bool:
        return bool(self.s3 or self.ssh)

    def access_for(self, groups: Iterable[str]) -> Access:
        """The union of the rules for ``"*"`` and each of the user's groups; with no rule
        at all for the user: nothing (no endpoint, no host)."""
        if self.access is None:
            return Access(None, None, None)
        rules = [self.access[g] for g in ["*", *sorted(set(groups))] if g in self.access]
        if not rules:
            return Access(frozenset(), frozenset(), 0)
        out = rules[0]
        for r in rules[1:]:
            out = out.union(r)
        return out

    def max_mounts_for(self, groups: Iterable[str]) -> int:
        a = self.access_for(groups)
        return self.max_mounts if a.max_mounts is None else a.max_mounts

    def s3_for(self, groups: Iterable[str]) -> list[str]:
        allowed = self.access_for(groups).s3
        return [n for n in self.s3 if allowed is None or n in allowed]

    def ssh_for(self, groups: Iterable[str]) -> list[str]:
        allowed = self.access_for(groups).ssh
        return [n for n in self.ssh if allowed is None or n in allowed]


# --------------------------------------------------------------------------- parsing


ROOT = "c.GridSpawner.storage"


def parse_storage(raw: Any, key: str = ROOT) -> StorageConfig:
    """Validate ``c.GridSpawner.storage``; ``{}``/None → mounts disabled. Raises CatalogError."""
    if raw is None:
        return StorageConfig()
    raw = require_dict(raw, key)
    check_keys(
        raw,
        ("s3", "ssh", "max_mounts", "tool", "check_timeout", "key_dir", "access", "notebook_storage", "kubernetes", "data_dir"),
        key,
    )
    s3 = {}
    for name, conf in require_dict(raw.get("s3", {}), f"{key}['s3']").items():
        k = subkey(f"{key}['s3']", name)
        s3[check_name(name, k)] = parse_s3_endpoint(name, conf, k)
    ssh = {}
    for name, conf in require_dict(raw.get("ssh", {}), f"{key}['ssh']").items():
        k = subkey(f"{key}['ssh']", name)
        ssh[check_name(name, k)] = parse_ssh_host(name, conf, k)
    tool = raw.get("tool", "rclone")
    if tool not in TOOLS:
        raise CatalogError(f"{key}['tool']", f"must be one of: {', '.join(TOOLS)} (got {tool!r})")
    if tool == "s3fs":
        for name, ep in s3.items():
            if "sts" in ep.credentials:
                raise CatalogError(
                    f"{key}['s3'][{name!r}].credentials",
                    "s3fs cannot take STS session credentials from a private file; use tool 'rclone'",
                )
    max_mounts = require_int(raw.get("max_mounts", 4), f"{key}['max_mounts']", 0, 64)
    check_timeout = require_number(raw.get("check_timeout", 10), f"{key}['check_timeout']", 0.5)
    key_dir = raw.get("key_dir")
    if key_dir is not None:
        key_dir = require_text(key_dir, f"{key}['key_dir']", limit=1024)
        if not key_dir.startswith("/"):
            raise CatalogError(f"{key}['key_dir']", f"must be an absolute path (got {key_dir!r})")
    for name, host in ssh.items():
        if "key" in host.auth and key_dir is None:
            raise CatalogError(f"{key}['key_dir']", f"is needed for the hub-managed SSH keys of host {name!r} (auth 'key')")
    access = None
    if "access" in raw:
        access = {}
        for group, rule in require_dict(raw["access"], f"{key}['access']").items():
            if not isinstance(group, str) or not group:
                raise CatalogError(subkey(f"{key}['access']", group), "group names must be non-empty strings")
            access[group] = parse_access(rule, s3, ssh, subkey(f"{key}['access']", group))
        access = MappingProxyType(access)
    notebook = None
    if raw.get("notebook_storage") is not None:
        notebook = parse_notebook_storage(raw["notebook_storage"], s3, f"{key}['notebook_storage']")
    kube = _parse_kubernetes(raw.get("kubernetes", {}), f"{key}['kubernetes']")
    data_dir = raw.get("data_dir", "data")
    if not isinstance(data_dir, str) or not NAME.fullmatch(data_dir):
        raise CatalogError(f"{key}['data_dir']", f"must be a single directory name (got {data_dir!r})")
    return StorageConfig(
        s3=MappingProxyType(s3),
        ssh=MappingProxyType(ssh),
        max_mounts=max_mounts,
        tool=tool,
        check_timeout=check_timeout,
        key_dir=key_dir,
        access=access,
        notebook_storage=notebook,
        kubernetes=kube,
        data_dir=data_dir,
    )


def _parse_kubernetes(conf: Any, key: str) -> KubernetesMounts:
    conf = require_dict(conf, key)
    check_keys(conf, ("copy_image", "csi", "copy_resources"), key)
    image = conf.get("copy_image", KubernetesMounts.copy_image)
    if not isinstance(image, str) or not IMAGE_REF.fullmatch(image):
        raise CatalogError(f"{key}.copy_image", f"must be an image reference (got {image!r})")
    csi = {}
    for mtype, tmpl in require_dict(conf.get("csi", {}), f"{key}.csi").items():
        k = subkey(f"{key}.csi", mtype)
        if mtype not in ("s3", "ssh"):
            raise CatalogError(k, "must be 's3' or 'ssh'")
        # the builder owns its template rules
        csi[mtype] = parse_csi_template(tmpl, k)
    resources = require_dict(conf.get("copy_resources", {}), f"{key}.copy_resources")
    return KubernetesMounts(copy_image=image, csi=MappingProxyType(csi), copy_resources=MappingProxyType(resources))
