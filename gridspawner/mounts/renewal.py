"""Keeping the STS credentials of a running server's S3 mounts valid.

The hub issues per-user STS credentials for each S3 mount with ``credentials: "sts"`` when
the server starts (`sts.scoped_credentials`); they expire after the endpoint's
``sts.duration`` (or earlier, if the provider shortens it).

- Where the backend can replace them in a running mount (`Backend.renews_credentials`: the
  host backends, whose rclone mounts read their credential file again by themselves),
  `CredentialRenewal` asks STS again ``sts.renew_before`` seconds before they expire
  (default: when a third of their lifetime is left) and hands them to the backend. A
  renewal that fails (STS or the host unreachable) is retried every `RETRY` seconds while
  the server runs; the old credentials keep working until they expire.
- Where it cannot (Kubernetes: a CSI driver reads its Secret once, when it mounts),
  `stop_deadline` bounds the server's run time: it is stopped `STOP_MARGIN` seconds
  before the earliest expiry, while the mount can still write back what it caches.

Copies (mode ``copy``) use their credentials only during the launch: nothing to renew.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Sequence

from .config import StorageConfig
from .resolved import ResolvedMount, S3Secret
from .specs import MountSpec
from .sts import scoped_credentials

#: seconds between attempts after a failed renewal
RETRY = 60.0
#: seconds before the credentials expire at which a server that cannot renew them is stopped
STOP_MARGIN = 60.0


def renewable(specs: Sequence[MountSpec]) -> list[int]:
    """The indexes of the mounts whose credentials need renewing while the server runs."""
    return [i for i, s in enumerate(specs) if s.type == "s3" and s.credentials == "sts" and s.mode == "mount"]


def _expiring(mounts: Sequence[ResolvedMount]) -> list[S3Secret]:
    return [m.secret for m in mounts if m.mode == "mount" and isinstance(m.secret, S3Secret) and m.secret.expires_at]


def stop_deadline(mounts: Sequence[ResolvedMount]) -> float | None:
    """When a server whose backend cannot renew credentials must stop (epoch seconds): a
    little before the first of its live mounts' credentials expires. None: nothing expires."""
    times = [s.expires_at for s in _expiring(mounts)]
    return min(times) - STOP_MARGIN if times else None


def next_renewal(mounts: Sequence[ResolvedMount]) -> float | None:
    """When the first of the mounts' credentials is due for renewal (epoch seconds)."""
    times = [s.renew_at for s in _expiring(mounts) if s.renew_at]
    return min(times) if times else None


class CredentialRenewal:
    """The renewal loop of one server (one per spawner). `arm` starts it, `cancel` ends it."""

    def __init__(self, log: logging.Logger | logging.LoggerAdapter, name: str):
        self.log = log
        self.name = name  # the server, for log lines
        self._task: asyncio.Task | None = None

    def arm(self, backend: Any, launch: Any, specs: Sequence[MountSpec], storage: StorageConfig, username: str,
            at: float | None) -> None:
        """Renew the credentials of ``specs``' STS mounts from ``at`` (epoch seconds) on,
        while the server runs. Does nothing when there are none or the backend cannot."""
        self.cancel()
        indexes = renewable(specs)
        if not indexes or at is None or not getattr(backend, "renews_credentials", False):
            return
        self._task = asyncio.ensure_future(self._loop(backend, launch, specs, storage, username, indexes, at))

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _loop(self, backend, launch, specs, storage, username, indexes, at: float) -> None:
        while True:
            await asyncio.sleep(max(0.0, at - time.time()))
            at = await self._renew(backend, launch, specs, storage, username, indexes)

    async def _renew(self, backend, launch, specs, storage: StorageConfig, username: str, indexes) -> float:
        """One renewal; returns when the next one is due."""
        try:
            fresh = await asyncio.gather(*(
                scoped_credentials(storage.s3[specs[i].endpoint], username, specs[i].bucket, specs[i].prefix,
                                   specs[i].read_only, timeout=storage.check_timeout)
                for i in indexes
            ))
            secrets = dict(zip(indexes, fresh))
            done = await backend.renew_credentials(launch, secrets)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - STS, the host or a bug: the loop must go on
            self.log.warning("%s: could not renew the temporary S3 credentials of its data mounts (%s); "
                             "trying again in %g s", self.name, str(e) or type(e).__name__, RETRY)
            return time.time() + RETRY
        missing = [i + 1 for i in indexes if i not in done]
        if missing:
            self.log.warning("%s: data mount %s took no new S3 credentials (it is no longer mounted)",
                             self.name, ", ".join(map(str, missing)))
        if len(missing) == len(indexes):
            return time.time() + RETRY
        until = min(s.expires_at for s in secrets.values() if s.expires_at)
        self.log.info("%s: renewed the temporary S3 credentials of data mount %s (valid until %s UTC)", self.name,
                      ", ".join(str(i + 1) for i in indexes if i in done),
                      time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(until)))
        return min((s.renew_at for s in secrets.values() if s.renew_at), default=time.time() + RETRY)
