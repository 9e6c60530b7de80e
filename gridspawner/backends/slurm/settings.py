"""Validated, frozen settings of a ``kind: slurm`` backend (parsed once at hub start-up).

A mistake is a CatalogError naming the exact key, e.g.
``c.GridSpawner.backends['hpc']['gpu_types']['a100']['gres']``. The SSH part (accounts,
keys, known_hosts, timeouts) means what it means for ``kind: ssh`` and is parsed by the same
helpers; see docs/admin/slurm-backend.md for every key.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from typing import Any, Mapping

from ...vocabulary import NAME, CatalogError, parse_given, subkey as _sub
from ..host.settings import (
    MAX_SLUG,
    MAX_SOCKET_PATH,
    check_keys,
    parse_command,
    parse_env,
    parse_hub_api_url,
    parse_listen_host,
    parse_notebook_dir,
    parse_path,
    parse_seconds,
)
from ..host.scripts import SOCKET_NAME
from ..ssh.settings import ACCOUNT, Jump, parse_account, parse_address, parse_jump, parse_port, parse_relay_ports

#: Slurm names: partitions, QoS, accounts, gres types, features (what sbatch accepts, no shell)
SLURM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
_TYPICAL_ACCOUNT = "x" * 16
#: room left in a socket path for the job id suffix of a session directory (".<job id>")
_JOB_SUFFIX = len(".4294967295")
#: the longest session root (account filled in) that leaves room for slug, job id and socket
SESSION_ROOT_ROOM = MAX_SOCKET_PATH - len(f"/{'x' * MAX_SLUG}/{SOCKET_NAME}") - _JOB_SUFFIX


@dataclass(frozen=True)
class LoginHost:
    """A login (gate) node where ``sbatch``/``squeue`` run; the hub reaches compute nodes
    through it."""

    name: str
    address: str
    port: int = 22
    jump: Jump | None = None  # a gateway in front of the login node itself


@dataclass(frozen=True)
class GPUType:
    """A GPU type users may pick: Slurm's gres type (``--gres=gpu:TYPE:N``), an optional node
    feature (``--constraint``) and the memory per card in GB (VRAM requests map to types)."""

    key: str
    gres: str
    memory: int  # GB per card; 0 = unknown (never chosen for a VRAM request)
    display_name: str
    feature: str | None = None


@dataclass(frozen=True)
class Placement:
    """Where a profile's jobs go: partition, QoS, account (None: Slurm's default)."""

    partition: str | None = None
    qos: str | None = None
    account: str | None = None


@dataclass(frozen=True)
class SlurmSettings:
    login_hosts: tuple[LoginHost, ...]
    username: str = "{username}"
    probe_username: str | None = None
    client_keys: tuple[str, ...] | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    connect_timeout: float = 10.0
    keepalive_interval: float = 15.0
    keepalive_count_max: int = 3
    max_sessions: int = 8
    connection_idle_timeout: float = 120.0
    command_timeout: float = 30.0
    partitions: tuple[str, ...] = ()
    qos: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    profiles: tuple[tuple[str, Placement], ...] = ()
    gpu_types: tuple[GPUType, ...] = ()
    gpu_option: str = "gres"  # "gres": --gres=gpu[:type]:N; "gpus": --gpus=[type:]N
    queue_wait: float = 600.0
    start_wait: float = 60.0
    env_wait: float = 60.0
    poll_interval: float = 10.0
    pending_interval: float = 2.0
    time_limit: float | None = None
    session_root: str = "/tmp/gridspawner-{account}"
    notebook_dir: str = "~"
    job_output: str = ".gridspawner/slurm-%j.out"
    run_dir: str = ".gridspawner/runs"
    job_name: str = "gridspawner"
    extra_options: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    nvidia_smi: tuple[str, ...] = ("nvidia-smi",)
    node_port: int = 22
    relay_host: str = "127.0.0.1"
    relay_ports: tuple[int, int] | None = None
    hub_api_url: str | None = None

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @property
    def default(self) -> Placement:
        """The first partition, QoS and account of the admin's lists (None: Slurm's default)."""
        return Placement(
            partition=self.partitions[0] if self.partitions else None,
            qos=self.qos[0] if self.qos else None,
            account=self.accounts[0] if self.accounts else None,
        )

    def placement_for(self, profile: str | None) -> Placement:
        """The profile's partition/QoS/account, each falling back to the backend's default."""
        own = dict(self.profiles).get(profile) if profile else None
        d = self.default
        if own is None:
            return d
        return Placement(own.partition or d.partition, own.qos or d.qos, own.account or d.account)

    def gpu_type(self, key: str) -> GPUType:
        for t in self.gpu_types:
            if t.key == key:
                return t
        raise KeyError(key)


_LOGIN_KEYS = ("name", "address", "port", "jump")
_GPU_TYPE_KEYS = ("gres", "memory", "display_name", "feature")
_PLACEMENT_KEYS = ("partition", "qos", "account")


def _slurm_name(value: Any, key: str, what: str) -> str:
    if not isinstance(value, str) or not SLURM_NAME.fullmatch(value):
        raise CatalogError(key, f"must be a Slurm {what} name: letters, digits, '_', '.', '+', '-' (got {value!r})")
    return value


def _names(value: Any, key: str, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise CatalogError(key, f"must be a list of Slurm {what} names (got {value!r})")
    out = tuple(_slurm_name(v, f"{key}[{i}]", what) for i, v in enumerate(value))
    if len(set(out)) != len(out):
        raise CatalogError(key, f"names a {what} twice")
    return out


def _login(value: Any, key: str) -> LoginHost:
    if isinstance(value, str):
        value = {"address": value}
    if not isinstance(value, Mapping) or "address" not in value:
        raise CatalogError(key, f"must be a login node address or a dict with 'address' (got {value!r})")
    check_keys(value, _LOGIN_KEYS, key)
    address = parse_address(value["address"], _sub(key, "address"))
    name = value.get("name", address)
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise CatalogError(_sub(key, "name"), f"must be a short name (got {name!r})")
    jump = parse_jump(value["jump"], _sub(key, "jump")) if value.get("jump") is not None else None
    return LoginHost(name=name, address=address, port=parse_port(value.get("port", 22), _sub(key, "port")), jump=jump)


def _gpu_types(value: Any, key: str) -> tuple[GPUType, ...]:
    if not isinstance(value, Mapping):
        raise CatalogError(key, f"must be a dict of GPU type key → {{gres, memory, display_name, feature}} (got {value!r})")
    out = []
    for k, raw in value.items():
        tk = _sub(key, k)
        _slurm_name(k, tk, "GPU type key")
        if isinstance(raw, str):
            raw = {"gres": raw}
        if not isinstance(raw, Mapping):
            raise CatalogError(tk, f"must be a dict with gres, memory, display_name, feature (got {raw!r})")
        check_keys(raw, _GPU_TYPE_KEYS, tk)
        gres = _slurm_name(raw.get("gres", k), _sub(tk, "gres"), "gres type")
        memory = raw.get("memory", 0)
        if isinstance(memory, bool) or not isinstance(memory, int) or memory < 0:
            raise CatalogError(_sub(tk, "memory"), f"must be the GB of memory per card, an integer >= 0 (got {memory!r})")
        display = raw.get("display_name", f"{k} ({memory} GB)" if memory else k)
        if not isinstance(display, str) or not display.strip() or "\n" in display:
            raise CatalogError(_sub(tk, "display_name"), f"must be a one-line text (got {display!r})")
        feature = raw.get("feature")
        if feature is not None:
            feature = _slurm_name(feature, _sub(tk, "feature"), "node feature")
        out.append(GPUType(key=k, gres=gres, memory=memory, display_name=display, feature=feature))
    return tuple(out)


def _placement(value: Any, key: str, lists: Mapping[str, tuple[str, ...]]) -> Placement:
    if not isinstance(value, Mapping):
        raise CatalogError(key, f"must be a dict with partition, qos, account (got {value!r})")
    check_keys(value, _PLACEMENT_KEYS, key)
    out: dict[str, str | None] = {}
    for name in _PLACEMENT_KEYS:
        v = value.get(name)
        if v is None:
            continue
        allowed = lists[name]
        _slurm_name(v, _sub(key, name), name)
        if allowed and v not in allowed:
            raise CatalogError(_sub(key, name), f"{v!r} is not in the backend's {name} list ({', '.join(allowed)})")
        out[name] = v
    return Placement(**out)


def _options(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise CatalogError(key, f"must be a list of sbatch options such as ['--constraint=ib'] (got {value!r})")
    for i, v in enumerate(value):
        if not isinstance(v, str) or not re.fullmatch(r"--[a-z][a-z-]*(=[^\x00\n\r]*)?", v):
            raise CatalogError(f"{key}[{i}]", f"must be one long sbatch option '--name=value' (got {v!r})")
        if v.split("=", 1)[0] in _OWN_OPTIONS:
            raise CatalogError(f"{key}[{i}]", f"{v.split('=', 1)[0]} is set by gridspawner (use the backend's own key)")
    return tuple(value)


#: sbatch options the backend sets itself; extra_options may not repeat them
_OWN_OPTIONS = {"--parsable", "--no-requeue", "--requeue", "--comment", "--job-name", "--output", "--error", "--partition", "--qos", "--account", "--gres",
                "--gpus", "--time", "--cpus-per-task", "--mem", "--constraint", "--export", "--chdir"}


def parse_slurm_settings(raw: Mapping, key: str) -> SlurmSettings:
    if not isinstance(raw, Mapping):
        raise CatalogError(key, f"must be a dict (got {type(raw).__name__})")
    check_keys(raw, SlurmSettings.keys(), key)
    out: dict[str, Any] = {}
    logins = raw.get("login_hosts")
    if isinstance(logins, (str, Mapping)):
        logins = [logins]
    if not isinstance(logins, (list, tuple)) or not logins:
        raise CatalogError(_sub(key, "login_hosts"), f"must be a non-empty list of login node addresses (got {logins!r})")
    out["login_hosts"] = tuple(_login(v, f"{_sub(key, 'login_hosts')}[{i}]") for i, v in enumerate(logins))
    out["username"] = parse_account(raw.get("username", "{username}"), _sub(key, "username"))
    if raw.get("probe_username") is not None:
        probe = parse_account(raw["probe_username"], _sub(key, "probe_username"))
        if "{" in probe:
            raise CatalogError(_sub(key, "probe_username"), "must be a fixed account name")
        out["probe_username"] = probe
    elif "{" in out["username"]:
        raise CatalogError(_sub(key, "probe_username"),
                           "is required when username is a template: the account that runs squeue/sinfo for all servers")
    if raw.get("client_keys") is not None:
        keys = raw["client_keys"]
        keys = [keys] if isinstance(keys, str) else keys
        if not isinstance(keys, (list, tuple)) or not keys:
            raise CatalogError(_sub(key, "client_keys"), f"must be a list of private key files (got {keys!r})")
        out["client_keys"] = tuple(parse_path(os.path.expanduser(k) if isinstance(k, str) else k,
                                              f"{_sub(key, 'client_keys')}[{i}]") for i, k in enumerate(keys))
    kh = raw.get("known_hosts", "~/.ssh/known_hosts")
    out["known_hosts"] = parse_path(os.path.expanduser(kh) if isinstance(kh, str) else kh, _sub(key, "known_hosts"))
    for name in ("connect_timeout", "keepalive_interval", "connection_idle_timeout", "command_timeout",
                 "poll_interval", "pending_interval"):
        if name in raw:
            out[name] = parse_seconds(raw[name], _sub(key, name), minimum=0.1)
    for name in ("queue_wait", "start_wait", "env_wait"):
        if name in raw:
            out[name] = parse_seconds(raw[name], _sub(key, name), minimum=1)
    if raw.get("time_limit") is not None:
        out["time_limit"] = parse_seconds(raw["time_limit"], _sub(key, "time_limit"), minimum=60)
    for name in ("keepalive_count_max", "max_sessions"):
        if name in raw:
            v = raw[name]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise CatalogError(_sub(key, name), f"must be an integer >= 1 (got {v!r})")
            out[name] = v
    lists = {}
    for name, what in (("partitions", "partition"), ("qos", "qos"), ("accounts", "account")):
        out[name] = _names(raw.get(name, ()), _sub(key, name), what)
        lists[what] = out[name]
    profiles = raw.get("profiles", {})
    if not isinstance(profiles, Mapping):
        raise CatalogError(_sub(key, "profiles"), f"must be a dict of profile name → {{partition, qos, account}} (got {profiles!r})")
    out["profiles"] = tuple((str(p), _placement(v, _sub(_sub(key, "profiles"), p), lists)) for p, v in profiles.items())
    out["gpu_types"] = _gpu_types(raw.get("gpu_types", {}), _sub(key, "gpu_types"))
    gpu_option = raw.get("gpu_option", "gres")
    if gpu_option not in ("gres", "gpus"):
        raise CatalogError(_sub(key, "gpu_option"), f"must be 'gres' (--gres=gpu:TYPE:N) or 'gpus' (--gpus=TYPE:N) (got {gpu_option!r})")
    out["gpu_option"] = gpu_option
    root = raw.get("session_root", "/tmp/gridspawner-{account}")
    if not isinstance(root, str) or "{" in root.replace("{account}", ""):
        raise CatalogError(_sub(key, "session_root"), f"must be an absolute path; may use {{account}} (got {root!r})")
    parse_path(root, _sub(key, "session_root"))
    # a fixed account is checked as it is; a template with a typical long account name (the
    # launch checks the real path and says which account does not fit)
    account = out["username"] if "{" not in out["username"] else _TYPICAL_ACCOUNT
    if len(root.replace("{account}", account).encode()) > SESSION_ROOT_ROOM:
        raise CatalogError(_sub(key, "session_root"),
                           f"is too long for unix socket paths (at most {SESSION_ROOT_ROOM} bytes with the account name)")
    out["session_root"] = root.rstrip("/") or "/"
    out.update(parse_given(raw, key, {
        "notebook_dir": parse_notebook_dir,
        "job_output": _job_output,
        "run_dir": _run_dir,
        "job_name": lambda v, k: _slurm_name(v, k, "job"),
        "extra_options": _options,
        "env": parse_env,
        "nvidia_smi": parse_command,
        "node_port": parse_port,
        "relay_host": parse_listen_host,
    }))
    out["relay_ports"] = parse_relay_ports(raw.get("relay_ports"), _sub(key, "relay_ports"))
    if raw.get("hub_api_url") is not None:
        out["hub_api_url"] = parse_hub_api_url(raw["hub_api_url"], _sub(key, "hub_api_url"))
    return SlurmSettings(**out)


def _job_output(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value or value.startswith("-") or any(c in value for c in "\x00\n\r"):
        raise CatalogError(key, f"must be a file name for sbatch --output, e.g. '.gridspawner/slurm-%j.out' (got {value!r})")
    return value


def _run_dir(value: Any, key: str) -> str:
    if (not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.+/-]{1,200}", value) or value.startswith("-")
            or ".." in value.split("/") or not value.strip("/")):
        raise CatalogError(key, "must be a directory for notebook runs on the filesystem the login and compute nodes "
                                f"share, absolute or relative to the account's home, e.g. '.gridspawner/runs' (got {value!r})")
    return value.rstrip("/")


def check_account(account: str, user: str) -> str:
    """``account`` if it is a valid POSIX account name, else ValueError naming ``user``."""
    if not ACCOUNT.fullmatch(account):
        raise ValueError(f"the user name {user!r} cannot be an account on the cluster")
    return account


__all__ = ["GPUType", "LoginHost", "Placement", "SlurmSettings", "parse_slurm_settings"]
