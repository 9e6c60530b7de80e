"""``kind: local`` — servers on the hub's own machine, each as its user's own Unix account
(``run_as: "user"``, the default when the hub runs as root) or as the hub's account.

The host backend with a `LocalTransport`: the same scripts, GPU ledger and placement as the
ssh kind, run with ``/bin/sh -s`` here, and an in-process relay from a TCP port on
``relay_host`` to the server's unix socket.

Example::

    c.GridSpawner.backends = {
        "here": {
            "kind": "local",
            "display_name": "This machine",
            "notebook_dir": "~/notebooks/{username}",
            "env": {"HF_HOME": "/data/hf-cache"},
        },
    }
    c.GridSpawner.images = {
        "torch": {"local": {"prefix": ". /opt/envs/torch/bin/activate"}},
    }
"""

from __future__ import annotations

import dataclasses
import getpass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .host.accounts import account_name, hub_is_root, parse_account_settings, resolve_account
from .host.backend import HostBackend
from .host.confine import account_env, limits_of
from .host.placement import HostLogin, Placement
from .host.launch_scripts import LaunchSpec
from .host.settings import HostImage, HostSettings, parse_host_image, parse_host_settings
from .host.transport import LocalTransport, Transport

if TYPE_CHECKING:
    from ..request import LaunchRequest
    from .base import LaunchContext


@dataclasses.dataclass(frozen=True)
class LocalSettings(HostSettings):
    """`HostSettings` plus who servers run as and whether limits are enforced (`host.accounts`)."""

    run_as: str = "hub"
    account: str = "{username}"
    account_function: Callable[[str], str] | None = None
    create_accounts: bool = False
    enforce_limits: bool = False


class LocalBackend(HostBackend):
    """Runs servers on the hub's machine.

    Settings (keys of ``c.GridSpawner.backends[name]`` besides ``kind``, ``display_name``
    and ``description``):

    ``run_as``
        ``"user"``: each server runs as its hub user's own Unix account (``account``), in a
        session directory, socket and notebook directory only that account can read — the
        default when the hub runs as root. ``"hub"``: every server runs as the hub's account,
        so any server can read every other's notebooks, tokens and mount credentials:
        **unsafe on a hub with several users** (the hub warns in its log).
    ``account``
        With ``run_as: "user"``: the account of a hub user, a template whose only
        placeholder is ``{username}`` (e.g. ``"jh-{username}"``). Default ``"{username}"``.
        The result must be a safe login name, or the spawn fails naming it.
    ``account_function``
        Instead of ``account``: a function (or its import string, ``"module:function"``) that
        takes the hub user name and returns the account name.
    ``create_accounts``
        With ``run_as: "user"``: create a missing account with ``useradd --create-home``
        (within ``command_timeout``) at its first spawn, as JupyterHub's
        ``create_system_users``. Default false: a missing account is a clear spawn error.
    ``enforce_limits``
        Hold each server to its ``cpu`` / ``memory`` choices with its own cgroup (v2, or v1
        memory + cpu + cpuacct); a start that cannot apply them fails with the reason.
        Default: true when the hub runs as root (it must, to manage cgroups).
    ``session_root``
        Parent of the per-session directories that hold each server's unix socket, pid and
        log: 0700 with ``run_as: "hub"``, 0711 (owned by root; each session directory 0700,
        its user's) with ``run_as: "user"``. Default ``/tmp/gridspawner-<uid of the hub>``.
        Keep it short: socket paths must stay under 104 bytes.
    ``ledger_dir``
        The GPU allocation ledger, shared by every hub on this machine that uses it (made
        0700 by the hub's user when missing; a directory another account made or may change
        is refused: see `host.ledger`). Default ``/tmp/gridspawner-ledger``.
    ``notebook_dir``
        Where a server starts; ``{username}`` (the only placeholder) becomes a safe form of
        the user name. ``~/`` is the home of the account the server runs as. Created (as
        that account) if missing.
        Default ``~/gridspawner/{username}``.
    ``nvidia_smi``
        The nvidia-smi command (a string or a list of words). Default ``nvidia-smi``;
        a machine without it has no GPUs.
    ``env``
        Extra environment variables for every server (dict name → string).
    ``interrupt_timeout`` / ``term_timeout`` / ``kill_timeout``
        Seconds to wait after SIGINT, SIGTERM and SIGKILL when stopping a server
        (defaults 10, 5, 5, as JupyterHub's LocalProcessSpawner).
    ``relay_host``
        The address the hub reaches servers on (a TCP relay to the socket). Default ``127.0.0.1``.
    ``start_wait``
        Seconds a launch waits for the server's socket (a server that dies meanwhile is
        reported with the end of its log); later the hub's own ``http_timeout`` applies. Default 30.
    ``command_timeout``
        Seconds any other host script may take. Default 30.
    ``mount_timeout``
        Seconds a launch with data mounts may take on top of ``command_timeout`` (copies
        take as long as the data needs). Default 3600.
    ``flush_timeout``
        Seconds stopping a server (or cleaning up after one that ended) waits for its data
        mounts to upload what was written to them last (rclone uploads a file a few seconds
        after it is closed); writes still not uploaded then are kept on the host and named
        in the hub's log, never deleted. Default 60.
    ``ledger_grace``
        Seconds a GPU claim counts without a running process holding it (between the claim
        and the server's start; after a server died). Default 120.
    ``host_name``
        The name shown for this machine in progress messages and capacity. Default ``localhost``.

    Image settings (``c.GridSpawner.images[key]["local"]``): ``cmd`` (a list of words that
    replaces the spawner's ``cmd``), ``prefix`` (admin-trusted shell text run first, e.g.
    ``. /opt/envs/torch/bin/activate``) and ``env`` (dict name → string).
    """

    kind = "local"

    settings: LocalSettings

    @classmethod
    def resource_limits(cls, settings: Any) -> str:
        # each server in its own cgroup, or plain processes
        return "all" if getattr(settings, "enforce_limits", False) else "none"

    def __init__(self, name: str, settings: Any, *, tolerance: float = 0.07):
        super().__init__(name, settings, tolerance=tolerance)
        self._transport = LocalTransport()
        s = self.settings
        if s.run_as == "user":
            self.log.info("backend %s: each server runs as its user's own account (%s)", name,
                          "account_function" if s.account_function else f"account {s.account!r}")
        else:
            self.log.warning("backend %s: every server runs as the hub's account %s: any server can read the "
                             "others' files and tokens; unsafe for a hub with several users (set run_as: 'user')",
                             name, getpass.getuser())
        self.log.info("backend %s: CPU / memory limits %s", name,
                      "enforced with cgroups" if s.enforce_limits else "NOT enforced")

    @classmethod
    def parse_settings(cls, name: str, raw: dict, key: str) -> LocalSettings:
        own = parse_account_settings(raw, key, root=hub_is_root()) if isinstance(raw, Mapping) else {}
        return parse_host_settings(LocalSettings, raw, key, **own)

    def account_for(self, host: str, user: str | None) -> str:
        """``user``'s own account with ``run_as: "user"`` (background work: the hub's)."""
        if user is None or self.settings.run_as != "user":
            return getpass.getuser()
        return account_name(self.settings, user)

    async def _prepare(self, ctx: LaunchContext, placement: Placement, request: LaunchRequest,
                       spec: LaunchSpec) -> tuple[LaunchSpec, dict]:
        """The user's account (looked up, created when allowed) and the cgroup limits."""
        s = self.settings
        if s.run_as == "user":
            account = await resolve_account(placement.login.account, create=s.create_accounts, timeout=s.command_timeout)
            ctx.progress(f"running as account {account.name}")
            spec = dataclasses.replace(spec, account=account, env={**spec.env, **account_env(account)})
        if s.enforce_limits:
            spec = dataclasses.replace(spec, limits=limits_of(request.cpu, request.memory))
        return spec, {}

    @classmethod
    def parse_image(cls, image: str, raw: dict, key: str) -> HostImage:
        return parse_host_image(image, raw, key)

    def hosts(self) -> Sequence[str]:
        return (self.settings.host_name,)

    async def transport(self, login: HostLogin) -> Transport:
        return self._transport

    async def close(self) -> None:
        await super().close()
        await self._transport.close()
