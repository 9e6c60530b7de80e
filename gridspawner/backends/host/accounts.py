"""Which Unix account a hub user's server runs as on the hub's machine (``kind: local``):
the settings (validated at start-up, each mistake naming its key), the mapping from a hub
user name to an account name, and looking the account up (creating it when the admin asked
for that, as JupyterHub's ``LocalProcessSpawner.create_system_users`` does).

``run_as: "user"`` (the default when the hub runs as root) runs each server as its user's
own account (`confine`); ``run_as: "hub"`` runs every server as the hub's account — every
server can then read every other server's files and tokens: only for single-user hubs.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import pwd
import stat
from typing import Any, Callable, Mapping

from ...vocabulary import LOGIN, CatalogError, check_placeholders, subkey
from ..base import BackendError
from .confine import Account

RUN_AS = ("user", "hub")
#: what `create_accounts` runs (the account name is appended); like JupyterHub's
#: ``useradd -m`` for create_system_users
USERADD = ("useradd", "--create-home", "--user-group", "--shell", "/bin/bash")
#: the uid below which an account is a system account a server must never run as
MIN_UID = 1000


def hub_is_root() -> bool:
    return os.geteuid() == 0


def parse_account_settings(raw: Mapping, key: str, *, root: bool) -> dict[str, Any]:
    """The account keys of ``raw`` (``LocalSettings`` fields) (defaults: per-user accounts
    and enforced limits when the hub runs as root, the hub's account otherwise)."""
    out: dict[str, Any] = {}
    run_as = raw.get("run_as", "user" if root else "hub")
    if run_as not in RUN_AS:
        raise CatalogError(subkey(key, "run_as"), f"must be 'user' or 'hub' (got {run_as!r})")
    if run_as == "user" and not root:
        raise CatalogError(subkey(key, "run_as"), "'user' needs the hub to run as root (it switches to each user's "
                           "account); run the hub as root or set 'hub'")
    out["run_as"] = run_as
    account = raw.get("account", "{username}")
    if not isinstance(account, str) or not account:
        raise CatalogError(subkey(key, "account"), f"must be a template such as '{{username}}' or 'jh-{{username}}' (got {account!r})")
    out["account"] = check_placeholders(account, subkey(key, "account"))
    out["account_function"] = _parse_function(raw.get("account_function"), subkey(key, "account_function"))
    for name in ("create_accounts", "enforce_limits"):
        if name in raw and not isinstance(raw[name], bool):
            raise CatalogError(subkey(key, name), f"must be true or false (got {raw[name]!r})")
    out["create_accounts"] = bool(raw.get("create_accounts", False))
    if out["create_accounts"] and run_as != "user":
        raise CatalogError(subkey(key, "create_accounts"), "only applies with run_as 'user'")
    limits = raw.get("enforce_limits", root)
    if limits and not root:
        raise CatalogError(subkey(key, "enforce_limits"), "cgroup limits need the hub to run as root")
    out["enforce_limits"] = bool(limits)
    return out


def _parse_function(value: Any, key: str) -> Callable[[str], str] | None:
    if value is None or callable(value):
        return value
    if not isinstance(value, str) or not value:
        raise CatalogError(key, f"must be a function or an import string 'module:function' (got {value!r})")
    module, sep, attr = value.partition(":")
    if not sep:
        module, _, attr = value.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise CatalogError(key, f"cannot import {value!r}: {e}") from None
    if not callable(found):
        raise CatalogError(key, f"{value!r} is not a function")
    return found


def account_name(settings: Any, user: str) -> str:
    """The account ``user`` (a hub user name) runs as: the admin's function, else the
    template (``settings``: a ``LocalSettings``). Raises BackendError when the result is no safe login name."""
    if settings.account_function is not None:
        try:
            name = settings.account_function(user)
        except Exception as e:  # the admin's code: say whose and what
            raise BackendError(f"the account function failed for {user!r}: {e}") from None
    else:
        name = settings.account.format(username=user)
    if not isinstance(name, str) or not LOGIN.fullmatch(name):
        raise BackendError(f"hub user {user!r} maps to {name!r}, which is not a safe account name "
                           "(1-32 lowercase letters, digits, '_', '.', '-'; starting with a letter or '_')")
    return name


def look_up(name: str) -> Account | None:
    """The account ``name`` on this machine (None: there is none)."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return None
    return Account(name=pw.pw_name, uid=pw.pw_uid, gid=pw.pw_gid, home=pw.pw_dir)


async def resolve_account(name: str, *, create: bool, timeout: float) -> Account:
    """The account ``name``, created first (``useradd``, bounded by ``timeout`` seconds)
    when it is missing and ``create``; BackendError when it is missing or a system account."""
    found = look_up(name)
    if found is None and create:
        await _create(name, timeout)
        found = look_up(name)
    if found is None:
        raise BackendError(f"there is no Unix account {name!r} on this machine to run the server as; "
                           "ask the hub admin to create it (or to set create_accounts)")
    if found.uid < MIN_UID:
        raise BackendError(f"account {name!r} is a system account (uid {found.uid} < {MIN_UID}); servers never run as one")
    return found


async def _create(name: str, timeout: float) -> None:
    try:
        proc = await asyncio.create_subprocess_exec(*USERADD, name, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    except OSError as e:
        raise BackendError(f"cannot create the account {name!r}: {e}") from None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise BackendError(f"creating the account {name!r} took longer than {timeout:g} s") from None
    if proc.returncode != 0 and look_up(name) is None:  # 9: made meanwhile by a second spawn
        raise BackendError(f"cannot create the account {name!r}: {out.decode(errors='replace').strip()[-300:]}")


#: the hub's own files that no server may read, where JupyterHub and gridspawner keep them
#: by default (the hub's working directory); `hub_files` adds the configured ones
HUB_FILES = ("jupyterhub.sqlite", "jupyterhub_cookie_secret", "gridspawner-usage.sqlite")


def sqlite_file(url: str | None) -> str | None:
    """The file of a ``sqlite:///`` database URL (None: another database, or in memory)."""
    if not url or not url.startswith("sqlite:///") or url in ("sqlite:///", "sqlite:///:memory:"):
        return None
    return url[len("sqlite:///"):].split("?", 1)[0]


def hub_files(*, db_url: str | None, cookie_secret_file: str | None, usage_db_url: str | None,
              key_dir: str | None) -> tuple[str, ...]:
    """The hub's own files (absolute paths) that servers of other accounts must not read:
    its database, cookie secret, gridspawner's usage database and SSH key directory."""
    found = [sqlite_file(db_url), cookie_secret_file, sqlite_file(usage_db_url), key_dir, *HUB_FILES]
    return tuple(dict.fromkeys(os.path.abspath(p) for p in found if p))


def exposed_files(paths: tuple[str, ...]) -> list[str]:
    """Those of ``paths`` (absolute) that any other account may read: readable by others
    (a directory: readable or searchable), below directories all searchable by others."""
    out = []
    for path in paths:
        try:
            st = os.stat(path)
            parents = [os.stat(d).st_mode for d in _parents(path)]
        except OSError:
            continue
        bits = 0o005 if stat.S_ISDIR(st.st_mode) else 0o004
        if st.st_mode & bits and all(mode & 0o001 for mode in parents):
            out.append(f"{path} (mode {st.st_mode & 0o777:o})")
    return out


def _parents(path: str) -> list[str]:
    out, d = [], os.path.dirname(path)
    while d and d != "/":
        out.append(d)
        d = os.path.dirname(d)
    return out
