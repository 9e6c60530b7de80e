"""Validated, frozen settings of a host backend (``kind: local``; ``ssh`` extends them) and of
what an image runs on such a host. Parsed once at hub start-up; every mistake is a
CatalogError naming the exact key, e.g. ``c.GridSpawner.backends['here']['session_root']``."""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
from dataclasses import dataclass, fields
from typing import Any, Mapping

from ...vocabulary import HOSTNAME as _HOSTNAME, CatalogError, check_keys, check_placeholders, parse_given, subkey as _sub, user_dir_name
from ...server_env import FACTS
from .scripts import SOCKET_NAME, env_name_ok

#: the longest session slug the spawner makes ("<20 readable>-<10 hex>") plus some room
MAX_SLUG = 40
#: sun_path is 108 bytes on Linux, 104 on the BSDs/macOS (including the final NUL)
MAX_SOCKET_PATH = 103
_LABEL = re.compile(r"[^\x00-\x1f\x7f]{1,100}")
#: environment names an admin may not set: the hub's own, and the GPU isolation
_RESERVED_ENV = re.compile(r"JUPYTERHUB_.*|CUDA_VISIBLE_DEVICES|NVIDIA_VISIBLE_DEVICES")


def parse_path(value: Any, key: str, *, allow_home: bool = False) -> str:
    if not isinstance(value, str) or not value:
        raise CatalogError(key, f"must be a non-empty path (got {value!r})")
    if any(c in value for c in "\x00\n\r"):
        raise CatalogError(key, "must not contain NUL or newline characters")
    if not value.startswith("/") and not (allow_home and (value == "~" or value.startswith("~/"))):
        raise CatalogError(key, "must be an absolute path" + (" or start with '~/'" if allow_home else "") + f" (got {value!r})")
    return value.rstrip("/") or "/"


def parse_seconds(value: Any, key: str, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum or value != value:
        raise CatalogError(key, f"must be a number of seconds >= {minimum:g} (got {value!r})")
    return float(value)


def parse_env(value: Any, key: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise CatalogError(key, f"must be a dict of environment variable name → string (got {type(value).__name__})")
    out = []
    for name, v in value.items():
        if not env_name_ok(name):
            raise CatalogError(_sub(key, name), "is not a valid environment variable name")
        if _RESERVED_ENV.fullmatch(name) or name in FACTS:
            raise CatalogError(_sub(key, name), "is set by JupyterHub / gridspawner and may not be overridden")
        if not isinstance(v, str) or "\x00" in v:
            raise CatalogError(_sub(key, name), f"must be a string without NUL characters (got {v!r})")
        out.append((name, v))
    return tuple(out)


def parse_command(value: Any, key: str) -> tuple[str, ...]:
    """A command as a list of words, or a string split like a shell would (no expansion)."""
    if isinstance(value, str):
        try:
            value = shlex.split(value)
        except ValueError as e:
            raise CatalogError(key, f"cannot be split into words: {e}") from None
    if (
        not isinstance(value, (list, tuple))
        or not value
        or not all(isinstance(w, str) and w and "\x00" not in w for w in value)
    ):
        raise CatalogError(key, f"must be a non-empty list of non-empty strings (got {value!r})")
    return tuple(value)


def parse_notebook_dir(value: Any, key: str) -> str:
    return check_placeholders(parse_path(value, key, allow_home=True), key)


def default_session_root() -> str:
    return f"/tmp/gridspawner-{os.getuid()}"


@dataclass(frozen=True)
class HostSettings:
    """Settings every host backend has (see `LocalBackend` for the meaning of each key)."""

    session_root: str
    ledger_dir: str = "/tmp/gridspawner-ledger"
    notebook_dir: str = "~/gridspawner/{username}"
    nvidia_smi: tuple[str, ...] = ("nvidia-smi",)
    env: tuple[tuple[str, str], ...] = ()
    interrupt_timeout: float = 10.0
    term_timeout: float = 5.0
    kill_timeout: float = 5.0
    relay_host: str = "127.0.0.1"
    start_wait: float = 30.0
    command_timeout: float = 30.0
    mount_timeout: float = 3600.0
    flush_timeout: float = 60.0
    ledger_grace: float = 120.0
    host_name: str = "localhost"

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def notebook_dir_for(self, user: str) -> str:
        # formatted once, with a safe name: a user name never becomes a template or a path part
        return self.notebook_dir.format(username=user_dir_name(user))


def parse_host_settings(cls: type, raw: Mapping, key: str, **defaults: Any) -> Any:
    """Validate ``raw`` into ``cls`` (HostSettings or a subclass); the subclass's own keys
    must be validated by the caller and passed in ``defaults``."""
    if not isinstance(raw, Mapping):
        raise CatalogError(key, f"must be a dict (got {type(raw).__name__})")
    check_keys(raw, cls.keys(), key)
    out: dict[str, Any] = dict(defaults)
    out["session_root"] = parse_path(raw.get("session_root", default_session_root()), _sub(key, "session_root"))
    room = MAX_SOCKET_PATH - len(f"/{'x' * MAX_SLUG}/{SOCKET_NAME}")
    if len(out["session_root"].encode()) > room:
        raise CatalogError(
            _sub(key, "session_root"),
            f"is too long for unix socket paths ({len(out['session_root'].encode())} bytes; at most {room}): "
            "choose a short directory such as /tmp/gridspawner",
        )
    out.update(parse_given(raw, key, {
        "ledger_dir": parse_path,
        "notebook_dir": parse_notebook_dir,
        "nvidia_smi": parse_command,
        "env": parse_env,
        **dict.fromkeys(("interrupt_timeout", "term_timeout", "kill_timeout", "ledger_grace", "mount_timeout",
                         "flush_timeout", "start_wait"), parse_seconds),
        "command_timeout": lambda v, k: parse_seconds(v, k, minimum=0.1),
        "relay_host": parse_listen_host,
        "host_name": _parse_host_name,
    }))
    return cls(**out)


def _parse_host_name(value: Any, key: str) -> str:
    if not isinstance(value, str) or not _LABEL.fullmatch(value):
        raise CatalogError(key, f"must be a short one-line name (got {value!r})")
    return value


def parse_hub_api_url(value: Any, key: str) -> str:
    """The hub's API URL as a remote server reaches it (no trailing slash)."""
    if not isinstance(value, str) or not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", value):
        raise CatalogError(key, f"must be an http(s) URL such as 'http://hub.example.org:8081/hub/api' (got {value!r})")
    return value.rstrip("/")


def parse_listen_host(value: Any, key: str) -> str:
    if isinstance(value, str):
        try:
            ipaddress.ip_address(value)
            return value
        except ValueError:
            if _HOSTNAME.fullmatch(value):
                return value
    raise CatalogError(key, f"must be an IP address or host name to listen on, e.g. '127.0.0.1' (got {value!r})")


@dataclass(frozen=True)
class HostImage:
    """What an image runs on a host: ``cmd`` replaces the spawner's command when set,
    ``prefix`` is admin-trusted shell text run first (e.g. activating an environment),
    ``env`` is added to the server's environment."""

    cmd: tuple[str, ...] | None = None
    prefix: str = ""
    env: tuple[tuple[str, str], ...] = ()


HOST_IMAGE_KEYS = ("cmd", "prefix", "env")


def parse_host_image(image: str, raw: Mapping, key: str) -> HostImage:
    if not isinstance(raw, Mapping):
        raise CatalogError(key, f"must be a dict (got {type(raw).__name__})")
    check_keys(raw, HOST_IMAGE_KEYS, key)
    cmd = None
    if "cmd" in raw:
        cmd = raw["cmd"]
        if not isinstance(cmd, (list, tuple)):
            raise CatalogError(_sub(key, "cmd"), f"must be a list of strings, e.g. ['jupyterhub-singleuser'] (got {cmd!r})")
        cmd = parse_command(cmd, _sub(key, "cmd"))
    prefix = raw.get("prefix", "")
    if not isinstance(prefix, str) or "\x00" in prefix:
        raise CatalogError(_sub(key, "prefix"), "must be shell text, e.g. '. /opt/envs/torch/bin/activate'")
    env = parse_env(raw.get("env", {}), _sub(key, "env"))
    return HostImage(cmd=cmd, prefix=prefix, env=env)
