"""The lifecycle of a server's Secrets: the token Secret and one per data mount.

The per-server Secret (the API token) is deliberately not owned by its pod — making it so
would cost a patch per spawn. It is deleted instead at stop, after a failed launch, when the
pod watch sees its pod DELETED (deletion outside the hub), and once per hub start by a sweep
of Secrets with our labels whose pod no longer exists. Secrets of launches still in flight
are never touched, and every delete of a Secret we did not just create names its uid.
A server's data mounts (``ctx.mounts``) each get a Secret of their own (``<secret>-m<i>``,
same labels), handled the same way: listed with uids in the launch state and in a pod
annotation, deleted at stop, after a failed launch, with the pod, and by the sweep.

`SecretCleanup` is one of the parts `KubernetesBackend` is composed of; it owns the set of
pods whose Secrets a stop or a clean-up deletes itself (so the watch need not).
"""

from __future__ import annotations

import collections
import logging

from . import objects
from .connection import ClusterConnection
from .in_flight import BackgroundTasks, LaunchesInFlight
from .objects import ServerNames
from .settings import KubernetesSettings
from .watch import SharedWatch


class SecretCleanup:
    """Deletes the Secrets of pods that are gone, and nothing a launch in flight still uses."""

    def __init__(self, connection: ClusterConnection, settings: KubernetesSettings, name: str,
                 log: logging.Logger, in_flight: LaunchesInFlight, tasks: BackgroundTasks):
        self.connection = connection
        self.settings = settings
        self.name = name
        self.log = log
        self.in_flight = in_flight
        self.tasks = tasks
        #: uids of pods whose Secret stop/cleanup deletes itself (the watch need not)
        self._handled_uids: collections.OrderedDict[str, None] = collections.OrderedDict()

    def handled(self, pod_uid: str | None) -> None:
        """The caller deletes this pod's Secret itself: the DELETED event need not."""
        if pod_uid:
            self._handled_uids[pod_uid] = None
            while len(self._handled_uids) > 10000:
                self._handled_uids.popitem(last=False)

    def pod_deleted(self, pod: dict) -> None:
        """Our pod is gone: delete its Secret, unless stop/cleanup does or a launch of the
        same server is in flight (a new Secret of the same name may be on its way)."""
        meta = pod.get("metadata") or {}
        name, uid = meta.get("name") or "", meta.get("uid") or ""
        if uid in self._handled_uids:
            del self._handled_uids[uid]
            return
        if not name or self.in_flight[name]:
            return
        secret_uid = (meta.get("annotations") or {}).get(objects.SECRET_UID_ANNOTATION)
        ns = meta.get("namespace") or self.connection.namespace
        self.tasks.start(self._delete_orphan(objects.secret_name(name), secret_uid, ns, f"its pod {name} was deleted"))
        for mname, muid in objects.mount_secrets_of(pod):
            self.tasks.start(self._delete_orphan(mname, muid, ns, f"its pod {name} was deleted"))

    async def _delete_orphan(self, secret: str, uid: str | None, namespace: str | None, why: str) -> None:
        try:
            if await self.connection.delete("secret", secret, uid=uid, namespace=namespace):
                self.log.info("deleted secret %s: %s", secret, why)
        except Exception as e:  # noqa: BLE001 - best effort: the next hub start sweeps again
            self.log.warning("could not delete secret %s (%s): %s", secret, why, e)

    async def sweep(self, pods: SharedWatch | None) -> None:
        """One list of our Secrets per hub process: delete those whose pod is gone (the hub
        was down when it went, or crashed mid-launch). Runs once ``pods`` (the pod watch's
        cache) is synced."""
        core = await self.connection.api()
        try:
            body = await self.connection.call(
                core.list_namespaced_secret,
                self.connection.namespace,
                label_selector=objects.secret_selector(self.settings),
                what="list secrets",
            )
        except Exception as e:  # noqa: BLE001 - a missing permission must not break spawning
            self.log.warning("could not look for leftover server secrets on %s: %s", self.name, e)
            return
        namespace = self.connection.namespace
        for secret in (body or {}).get("items") or []:
            meta = secret.get("metadata") or {}
            pod = objects.pod_of_secret(meta.get("name") or "")
            if pod is None or pods is None or self.in_flight[pod] or pods.get(f"{namespace}/{pod}") is not None:
                continue
            await self._delete_orphan(meta["name"], meta.get("uid"), None, "its pod no longer exists")

    async def after_failed_launch(self, names: ServerNames, uid: str | None, secret_uid: str | None,
                                  mount_secrets=()) -> None:
        """Delete what a failed launch made: its pod and Secrets, each by the uid it knows."""
        self.handled(uid)
        doomed = [("pod", names.pod, {"grace": 0, "uid": uid}), ("secret", names.secret, {"uid": secret_uid})]
        doomed += [("secret", n, {"uid": u}) for n, u in mount_secrets]
        for what, name, kw in doomed:
            try:
                await self.connection.delete(what, name, **kw)
            except Exception as e:  # noqa: BLE001 - best effort; log what is left
                self.log.warning("could not delete %s %s after a failed start: %s", what, name, e)
