"""Validated, frozen settings of a ``kind: ssh`` backend and of what an image runs there.

Parsed once at hub start-up; a mistake is a CatalogError naming the exact key, e.g.
``c.GridSpawner.backends['gpu']['hosts'][1]['port']``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from ...vocabulary import LOGIN, NAME as _NAME, CatalogError, check_placeholders, parse_given, subkey as _sub
from ..host.settings import (
    HOST_IMAGE_KEYS,
    MAX_SLUG,
    MAX_SOCKET_PATH,
    HostImage,
    HostSettings,
    check_keys,
    parse_command,
    parse_host_image,
    parse_host_settings,
    parse_hub_api_url,
    parse_path,
    parse_seconds,
)
from ..host.scripts import SOCKET_NAME
from .runtimes import CONTAINER_KINDS, RUNTIME_KINDS, Runtime

_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*")
_ADDRESS = re.compile(r"[A-Za-z0-9_.:-]{1,253}")  # a host name, IPv4 or IPv6 address
#: remote account names (POSIX portable, as useradd accepts them by default)
ACCOUNT = LOGIN
_LONGEST_ACCOUNT = "x" * 32


@dataclass(frozen=True)
class Jump:
    """A gateway (``ssh gate`` then ``ssh node``)."""

    address: str
    port: int = 22
    username: str | None = None  # None: the account used for the host behind it

    @property
    def name(self) -> str:
        return self.address


@dataclass(frozen=True)
class SSHHost:
    """One host and its overrides of the backend-wide settings (None: the backend's)."""

    name: str
    address: str
    port: int | None = None
    username: str | None = None
    nvidia_smi: tuple[str, ...] | None = None
    gpus: tuple[str, ...] | None = None  # indices or UUIDs the hub may hand out; None: all
    runtime: Runtime | None = None
    jump: Jump | None = None


@dataclass(frozen=True)
class SSHSettings(HostSettings):
    hosts: tuple[SSHHost, ...] = ()
    username: str = "{username}"
    client_keys: tuple[str, ...] | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    port: int = 22
    probe_username: str | None = None
    connect_timeout: float = 10.0
    keepalive_interval: float = 15.0
    keepalive_count_max: int = 3
    hub_api_url: str | None = None
    down_grace: float = 60.0
    relay_ports: tuple[int, int] | None = None
    runtime: Runtime = field(default_factory=Runtime)
    allow_host_choice: bool = False
    max_sessions: int = 8
    connection_idle_timeout: float = 120.0

    def host(self, name: str) -> SSHHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def runtime_of(self, host: SSHHost) -> Runtime:
        """The host's own runtime, else the backend's."""
        return host.runtime or self.runtime


#: HostSettings keys that mean nothing for remote hosts
_NOT_FOR_SSH = ("host_name",)
SSH_ONLY_KEYS = tuple(k for k in SSHSettings.keys() if k not in HostSettings.keys())
HOST_KEYS = ("name", "address", "port", "username", "nvidia_smi", "gpus", "runtime", "jump")
RUNTIME_KEYS = ("kind", "prefix", "command", "args")
JUMP_KEYS = ("address", "port", "username")


def _template(value: Any, key: str, names: tuple[str, ...]) -> str:
    if not isinstance(value, str) or not value or any(c in value for c in "\x00\n\r"):
        raise CatalogError(key, f"must be a non-empty one-line string (got {value!r})")
    return check_placeholders(value, key, names)


def parse_account(value: Any, key: str) -> str:
    """A fixed account name, or a template with ``{username}`` (the hub user's name)."""
    value = _template(value, key, ("username",))
    if "{" not in value and not ACCOUNT.fullmatch(value):
        raise CatalogError(key, f"is not a valid account name (got {value!r})")
    return value


def parse_port(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise CatalogError(key, f"must be a TCP port number 1-65535 (got {value!r})")
    return value


def parse_address(value: Any, key: str) -> str:
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value) or value.startswith("-"):
        raise CatalogError(key, f"must be a host name or IP address (got {value!r})")
    return value


def parse_runtime(value: Any, key: str) -> Runtime:
    if isinstance(value, str):
        value = {"kind": value}
    if not isinstance(value, Mapping):
        raise CatalogError(key, f"must be one of {', '.join(RUNTIME_KINDS)} or a dict with 'kind' (got {value!r})")
    check_keys(value, RUNTIME_KEYS, key)
    kind = value.get("kind", "none")
    if kind not in RUNTIME_KINDS:
        raise CatalogError(_sub(key, "kind"), f"must be one of {', '.join(RUNTIME_KINDS)} (got {kind!r})")
    prefix = value.get("prefix", "")
    if not isinstance(prefix, str) or "\x00" in prefix:
        raise CatalogError(_sub(key, "prefix"), "must be shell text, e.g. 'module load cuda/12'")
    command = value.get("command")
    if command is not None:
        command = parse_path(command, _sub(key, "command")) if "/" in str(command) else command
        if not isinstance(command, str) or not re.fullmatch(r"[A-Za-z0-9_./+-]+", command):
            raise CatalogError(_sub(key, "command"), f"must be a program name or absolute path (got {command!r})")
    args: tuple[str, ...] = ()
    if "args" in value:
        if kind == "none":
            raise CatalogError(_sub(key, "args"), "is only for container runtimes")
        raw_args = value["args"]
        if not isinstance(raw_args, (list, tuple)) or not all(isinstance(a, str) and "\x00" not in a for a in raw_args):
            raise CatalogError(_sub(key, "args"), f"must be a list of strings (got {raw_args!r})")
        args = tuple(raw_args)
    return Runtime(kind=kind, prefix=prefix, command=command, args=args)


def parse_jump(value: Any, key: str) -> Jump:
    if isinstance(value, str):
        value = {"address": value}
    if not isinstance(value, Mapping) or "address" not in value:
        raise CatalogError(key, f"must be a gateway address or a dict with 'address' (got {value!r})")
    check_keys(value, JUMP_KEYS, key)
    username = value.get("username")
    if username is not None:
        username = parse_account(username, _sub(key, "username"))
    return Jump(
        address=parse_address(value["address"], _sub(key, "address")),
        port=parse_port(value.get("port", 22), _sub(key, "port")),
        username=username,
    )


def _parse_gpus(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(
        (isinstance(g, int) and not isinstance(g, bool) and g >= 0) or (isinstance(g, str) and g) for g in value
    ):
        raise CatalogError(key, f"must be a list of GPU indices or UUIDs (got {value!r})")
    return tuple(str(g) for g in value)


def _parse_host(value: Any, key: str) -> SSHHost:
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping):
        raise CatalogError(key, f"must be a host name or a dict with 'name' (got {value!r})")
    check_keys(value, HOST_KEYS, key)
    name = value.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise CatalogError(_sub(key, "name"), f"must be a short name: letters, digits, '.', '_', '-' (got {name!r})")
    out: dict[str, Any] = {"name": name, "address": parse_address(value.get("address", name), _sub(key, "address"))}
    out.update(parse_given(value, key, {
        "port": parse_port,
        "username": parse_account,
        "nvidia_smi": parse_command,
        "gpus": _parse_gpus,
        "runtime": parse_runtime,
    }))
    if value.get("jump") is not None:
        out["jump"] = parse_jump(value["jump"], _sub(key, "jump"))
    return SSHHost(**out)


def _at_least_one(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CatalogError(key, f"must be an integer >= 1 (got {value!r})")
    return value


def _true_or_false(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise CatalogError(key, "must be true or false")
    return value


def parse_relay_ports(value: Any, key: str) -> tuple[int, int] | None:
    """``"30000-30999"`` or ``[30000, 30999]`` (inclusive), or None."""
    if value is None:
        return None
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", value)
        if not m:
            raise CatalogError(key, f"must be a range such as '30000-30999' (got {value!r})")
        value = [int(m.group(1)), int(m.group(2))]
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65535 for v in value)
        or value[0] > value[1]
    ):
        raise CatalogError(key, f"must be [first, last] TCP ports with first <= last (got {value!r})")
    return (value[0], value[1])


def _known_hosts(value: Any, key: str) -> str:
    """An absolute path (``~`` expanded). Whether the file exists is checked when connecting:
    the hub's config is often validated where the mounted secrets are not (CI, Helm tests),
    and a missing file then makes every host unreachable with a message naming the file."""
    path = os.path.expanduser(value) if isinstance(value, str) else value
    return parse_path(path, key)


def parse_ssh_settings(raw: Mapping, key: str) -> SSHSettings:
    if not isinstance(raw, Mapping):
        raise CatalogError(key, f"must be a dict (got {type(raw).__name__})")
    allowed = [k for k in SSHSettings.keys() if k not in _NOT_FOR_SSH]
    check_keys(raw, allowed, key)
    own: dict[str, Any] = {}
    hosts = raw.get("hosts")
    if not isinstance(hosts, (list, tuple)) or not hosts:
        raise CatalogError(_sub(key, "hosts"), f"must be a non-empty list of hosts (got {hosts!r})")
    parsed = tuple(_parse_host(h, f"{_sub(key, 'hosts')}[{i}]") for i, h in enumerate(hosts))
    names = [h.name for h in parsed]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise CatalogError(_sub(key, "hosts"), f"names the host {dup[0]!r} twice")
    own["hosts"] = parsed
    own["username"] = parse_account(raw.get("username", "{username}"), _sub(key, "username"))
    if raw.get("client_keys") is not None:
        keys = raw["client_keys"]
        if isinstance(keys, str):
            keys = [keys]
        if not isinstance(keys, (list, tuple)) or not keys:
            raise CatalogError(_sub(key, "client_keys"), f"must be a list of private key files (got {keys!r})")
        own["client_keys"] = tuple(
            _template(parse_path(os.path.expanduser(k) if isinstance(k, str) else k, f"{_sub(key, 'client_keys')}[{i}]"),
                      f"{_sub(key, 'client_keys')}[{i}]", ("username",))
            for i, k in enumerate(keys)
        )
    own["known_hosts"] = _known_hosts(raw.get("known_hosts", "~/.ssh/known_hosts"), _sub(key, "known_hosts"))
    if "port" in raw:
        own["port"] = parse_port(raw["port"], _sub(key, "port"))
    if raw.get("probe_username") is not None:
        own["probe_username"] = parse_account(raw["probe_username"], _sub(key, "probe_username"))
        if "{" in own["probe_username"]:
            raise CatalogError(_sub(key, "probe_username"), "must be a fixed account name")
    templated = ["{" in own["username"]] + ["{" in (h.username or own["username"]) for h in parsed]
    if any(templated) and "probe_username" not in own:
        raise CatalogError(
            _sub(key, "probe_username"),
            "is required when username is a template: the account that probes GPUs in the background",
        )
    own.update(parse_given(raw, key, {
        **dict.fromkeys(("connect_timeout", "keepalive_interval"), lambda v, k: parse_seconds(v, k, minimum=0.1)),
        "down_grace": parse_seconds,
        "connection_idle_timeout": lambda v, k: parse_seconds(v, k, minimum=0.1),
        **dict.fromkeys(("keepalive_count_max", "max_sessions"), _at_least_one),
    }))
    if raw.get("hub_api_url") is not None:
        own["hub_api_url"] = parse_hub_api_url(raw["hub_api_url"], _sub(key, "hub_api_url"))
    own["relay_ports"] = parse_relay_ports(raw.get("relay_ports"), _sub(key, "relay_ports"))
    own.update(parse_given(raw, key, {"runtime": parse_runtime, "allow_host_choice": _true_or_false}))

    base_raw = {k: v for k, v in raw.items() if k not in SSH_ONLY_KEYS}
    root = base_raw.get("session_root", "/tmp/gridspawner-{account}")
    root = _template(root, _sub(key, "session_root"), ("account",))
    base_raw["session_root"] = root.replace("{account}", _LONGEST_ACCOUNT)  # validate the longest case
    settings = parse_host_settings(SSHSettings, base_raw, key, **own)
    room = MAX_SOCKET_PATH - len(f"/{'x' * MAX_SLUG}/{SOCKET_NAME}")
    if len(root.replace("{account}", _LONGEST_ACCOUNT).encode()) > room:
        raise CatalogError(_sub(key, "session_root"), f"is too long for unix socket paths (at most {room} bytes)")
    return replace(settings, session_root=root.rstrip("/") or "/")


@dataclass(frozen=True)
class SSHImage(HostImage):
    """What an image runs on ssh hosts: a HostImage plus the container ``image`` used on
    hosts whose runtime is apptainer, podman or docker."""

    image: str | None = None


SSH_IMAGE_KEYS = HOST_IMAGE_KEYS + ("image",)


def parse_ssh_image(name: str, raw: Mapping, key: str) -> SSHImage:
    if not isinstance(raw, Mapping):
        raise CatalogError(key, f"must be a dict (got {type(raw).__name__})")
    check_keys(raw, SSH_IMAGE_KEYS, key)
    base = parse_host_image(name, {k: v for k, v in raw.items() if k != "image"}, key)
    image = raw.get("image")
    if image is not None and (
        not isinstance(image, str) or not image or image.startswith("-") or any(c in image for c in "\x00\n\r \t")
    ):
        raise CatalogError(_sub(key, "image"), f"must be an image reference such as "
                                               f"'docker://quay.io/jupyter/scipy-notebook:latest' (got {image!r})")
    return SSHImage(cmd=base.cmd, prefix=base.prefix, env=base.env, image=image)


def image_for(image: SSHImage | HostImage | None, runtime: Runtime) -> str | None:
    """The image reference to run with ``runtime`` (podman and docker take no docker:// prefix)."""
    ref = getattr(image, "image", None)
    if ref is None or not runtime.is_container:
        return None
    if runtime.kind in ("podman", "docker") and ref.startswith("docker://"):
        return ref[len("docker://"):]
    return ref


__all__ = [
    "CONTAINER_KINDS",
    "Jump",
    "SSHHost",
    "SSHImage",
    "SSHSettings",
    "image_for",
    "parse_ssh_image",
    "parse_ssh_settings",
]
