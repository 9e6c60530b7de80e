"""The SSH part of ``c.GridSpawner.storage``: hosts users may mount paths of with sshfs
(``storage['ssh'][name]``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..catalog import CatalogError
from .config_fields import _CONTROL, NamePattern, _choices, _dict, _int, _keys, _patterns, _template, _text

SSH_AUTH = ("key", "password")

_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
    r"|[0-9a-fA-F:.]{2,45}"
)


@dataclass(frozen=True)
class SSHStorageHost:
    name: str
    address: str
    port: int = 22
    known_hosts: str = ""
    display_name: str = ""
    paths: tuple[NamePattern, ...] = ()
    user: str | None = "{username}"  # template; None: the user types the login name
    auth: tuple[str, ...] = ("key",)

    def allows_path(self, path: str, username: str) -> bool:
        return any(p.matches(path, username) for p in self.paths)

    def login_for(self, username: str) -> str | None:
        return self.user.format(username=username) if self.user is not None else None


def _parse_ssh(name: str, conf: Any, key: str) -> SSHStorageHost:
    conf = _dict(conf, key)
    _keys(conf, ("address", "port", "known_hosts", "display_name", "paths", "user", "auth"), key)
    address = conf.get("address")
    if not isinstance(address, str) or not _HOSTNAME.fullmatch(address):
        raise CatalogError(f"{key}.address", f"must be a host name or IP address (got {address!r})")
    port = _int(conf.get("port", 22), f"{key}.port", 1, 65535)
    known_hosts = conf.get("known_hosts")
    if not isinstance(known_hosts, str) or not known_hosts.startswith("/") or _CONTROL.search(known_hosts):
        raise CatalogError(f"{key}.known_hosts", "is required: an absolute path to a known_hosts file with this host's key")
    if "paths" not in conf:
        raise CatalogError(f"{key}.paths", "is required: the paths (globs or 're:' regexes) users may mount")
    paths = _patterns(conf["paths"], f"{key}.paths")
    user = conf.get("user", "{username}")
    if user is not None:
        user = _template(user, f"{key}.user", default="{username}")
    return SSHStorageHost(
        name=name,
        address=address,
        port=port,
        known_hosts=known_hosts,
        display_name=_text(conf.get("display_name"), f"{key}.display_name", name),
        paths=paths,
        user=user,
        auth=_choices(conf.get("auth", ["key"]), SSH_AUTH, f"{key}.auth"),
    )
