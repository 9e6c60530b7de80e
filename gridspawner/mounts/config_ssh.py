"""The SSH part of ``c.GridSpawner.storage``: hosts users may mount paths of with sshfs
(``storage['ssh'][name]``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..vocabulary import CONTROL, HOSTNAME, CatalogError, check_keys, choice_list, require_dict, require_int, require_text
from .config_fields import NamePattern, name_patterns, username_template

SSH_AUTH = ("key", "password")

#: a host name, or an IPv4 / IPv6 address
_ADDRESS = re.compile(rf"{HOSTNAME.pattern}|[0-9a-fA-F:.]{{2,45}}")


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


def parse_ssh_host(name: str, conf: Any, key: str) -> SSHStorageHost:
    conf = require_dict(conf, key)
    check_keys(conf, ("address", "port", "known_hosts", "display_name", "paths", "user", "auth"), key)
    address = conf.get("address")
    if not isinstance(address, str) or not _ADDRESS.fullmatch(address):
        raise CatalogError(f"{key}.address", f"must be a host name or IP address (got {address!r})")
    port = require_int(conf.get("port", 22), f"{key}.port", 1, 65535)
    known_hosts = conf.get("known_hosts")
    if not isinstance(known_hosts, str) or not known_hosts.startswith("/") or CONTROL.search(known_hosts):
        raise CatalogError(f"{key}.known_hosts", "is required: an absolute path to a known_hosts file with this host's key")
    if "paths" not in conf:
        raise CatalogError(f"{key}.paths", "is required: the paths (globs or 're:' regexes) users may mount")
    paths = name_patterns(conf["paths"], f"{key}.paths")
    user = conf.get("user", "{username}")
    if user is not None:
        user = username_template(user, f"{key}.user", default="{username}")
    return SSHStorageHost(
        name=name,
        address=address,
        port=port,
        known_hosts=known_hosts,
        display_name=require_text(conf.get("display_name"), f"{key}.display_name", name),
        paths=paths,
        user=user,
        auth=choice_list(conf.get("auth", ["key"]), SSH_AUTH, f"{key}.auth"),
    )
