"""``kind: local`` — servers on the hub's own machine, as the hub's user.

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

from typing import Any, Sequence

from .host.backend import HostBackend
from .host.placement import HostLogin
from .host.settings import HostImage, HostSettings, parse_host_image, parse_host_settings
from .host.transport import LocalTransport, Transport


class LocalBackend(HostBackend):
    """Runs servers on the hub's machine.

    Settings (keys of ``c.GridSpawner.backends[name]`` besides ``kind``, ``display_name``
    and ``description``):

    ``session_root``
        Private (0700) parent of the per-session directories that hold each server's unix
        socket, pid and log. Default ``/tmp/gridspawner-<uid of the hub>``. Keep it short:
        socket paths must stay under 104 bytes.
    ``ledger_dir``
        The GPU allocation ledger, shared by every hub on this machine that uses it (made
        0700 by the hub's user when missing; a directory another account made or may change
        is refused: see `host.ledger`). Default ``/tmp/gridspawner-ledger``.
    ``notebook_dir``
        Where a server starts; ``{username}`` (the only placeholder) becomes a safe form of
        the user name. ``~/`` is the hub user's home. Created if missing.
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

    @classmethod
    def resource_limits(cls, settings: Any) -> str:
        return "none"  # servers are plain processes of the hub's user

    def __init__(self, name: str, settings: Any, *, tolerance: float = 0.07):
        super().__init__(name, settings, tolerance=tolerance)
        self._transport = LocalTransport()

    @classmethod
    def parse_settings(cls, name: str, raw: dict, key: str) -> HostSettings:
        return parse_host_settings(HostSettings, raw, key)

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
