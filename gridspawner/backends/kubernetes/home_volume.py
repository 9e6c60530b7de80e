"""The user's home volume: a PersistentVolumeClaim created once per user (or per server with
``home_volume.per_server``) and hub process, and re-created when it vanished.

`HomeVolumes` is one of the parts `KubernetesBackend` is composed of; it owns the set of
claims this process knows to exist.
"""

from __future__ import annotations

from ..base import BackendError, LaunchContext
from . import objects
from .api import ApiError
from .connection import ClusterConnection
from .objects import ServerNames
from .settings import KubernetesSettings


class HomeVolumes:
    """Creates the home claim of a launch, and recovers from one deleted behind our back."""

    def __init__(self, connection: ClusterConnection, settings: KubernetesSettings):
        self.connection = connection
        self.settings = settings
        #: home claims known to exist (created, or found existing): not created again
        self._claims: set[str] = set()

    def forget(self, claim: str) -> None:
        """``claim`` is being deleted for good: create it again when it is needed."""
        self._claims.discard(claim)

    async def ensure(self, names: ServerNames, ctx: LaunchContext, *, again: bool = False) -> None:
        """Create the home claim unless this process knows it exists. A claim deleted outside
        the hub shows up as the pod's FailedScheduling "persistentvolumeclaim … not found";
        `Readiness` then forgets it and calls this ``again``."""
        if names.home_claim in self._claims and not again:
            return
        core = await self.connection.api()
        claim = objects.build_home_claim(self.settings, names, ctx.user, ctx.server_name)
        try:
            await self.connection.call(core.create_namespaced_persistent_volume_claim, self.connection.namespace, claim,
                                       what="create home claim")
            ctx.progress("Created a new home volume" if again else "Created your home volume")
        except ApiError as e:
            if e.status != 409:  # 409: the claim exists — it is the user's home, keep it
                raise
        self._claims.add(names.home_claim)

    async def claim_missing(self, ctx: LaunchContext, names: ServerNames, message: str) -> bool:
        """The scheduler cannot find (or is deleting) the home claim this process believed
        in. Not found: forget it and create it; the scheduler retries the pod once it binds.
        Being deleted: fail now, a later start creates a new one. True: handled."""
        if self.settings.home_volume is None:
            return False
        claim = names.home_claim
        if f'persistentvolumeclaim "{claim}" not found' in message:
            ctx.log.warning("home volume %s of %s is gone; creating a new one", claim, ctx.user)
            self._claims.discard(claim)
            await self.ensure(names, ctx, again=True)
            return True
        if f'persistentvolumeclaim "{claim}" is being deleted' in message:
            self._claims.discard(claim)
            raise BackendError(f"your home volume {claim} is being deleted; start again once it is gone")
        return False
