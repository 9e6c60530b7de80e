"""Servers that end by themselves leave nothing behind.

A server pod runs with ``restartPolicy: Never``, so when its process exits — the user's
File → Shut Down, an OOM kill, a crash — or the kubelet evicts it, the pod stays in phase
Succeeded or Failed until someone deletes it (a real cluster's pod garbage collector only
starts past 12,500 terminated pods), and its token and data-mount Secrets with it. The
hub only learns of it at its next poll, and then stops tracking the server without calling
``stop()``.

So the backend deletes an ended server itself, as soon as either of these sees it:

- the shared pod watch (any pod of this backend reaching Succeeded/Failed, including
  those the first list after a hub restart finds), and
- ``poll()`` (which also covers a pod that ended while its launch was still in flight).

What it said when it ended (exit status and reason) is kept by pod uid in ``_gone``, so
every later poll of that server answers the same, with the reason in the hub log once.

`remove_server_pod` is the one function that deletes a server's pod and Secrets given the
pod as the API returns it (name, uid, annotations); a sweep of orphaned pods reuses it.

`ServerCleanupMixin` is a part of `KubernetesBackend` (``_delete`` from `ConnectionMixin`,
``_handled`` and ``_in_background`` from `SecretCleanupMixin`).
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass
from typing import Mapping

from . import objects
from .settings import KubernetesSettings

_REMEMBERED = 10000  # ended pods whose exit is kept (a bounded memory; polls come within minutes)


@dataclass
class PodEnd:
    """How a server's pod ended, as the hub's polls report it."""

    status: int  # exit status for JupyterHub (never None, never 0 for a vanished pod)
    why: str
    reported: bool = False  # the hub log has said why once


class ServerCleanupMixin:
    """Deletes ended servers' pods and Secrets; remembers how each ended."""

    settings: KubernetesSettings
    name: str
    namespace: str | None
    log: logging.Logger
    _launching: collections.Counter[str]
    _gone: collections.OrderedDict[str, PodEnd]
    _removing: set[str]

    def _remember_end(self, uid: str, status: int, why: str) -> PodEnd:
        """Record how the pod ``uid`` ended (the first account wins: the reason it stopped
        is worth more than the deletion that followed)."""
        end = self._gone.get(uid)
        if end is None:
            end = self._gone[uid] = PodEnd(status, why)
            while len(self._gone) > _REMEMBERED:
                self._gone.popitem(last=False)
        return end

    def _server_ended(self, pod: Mapping) -> PodEnd | None:
        """``pod`` ended by itself (phase Succeeded/Failed, and nobody is deleting it — a stop
        is not an end by itself): remember how, and delete it with its Secrets in the
        background, once per uid. None otherwise. A pod whose launch is still in flight is
        left to the launch, which cleans up after itself."""
        meta = pod.get("metadata") or {}
        if not objects.pod_finished(pod) or meta.get("deletionTimestamp"):
            return None
        uid = meta.get("uid") or ""
        status, why = objects.pod_terminated(pod) or (1, "ended")
        end = self._remember_end(uid, status, why)
        if uid and uid not in self._removing and not self._launching[meta.get("name") or ""]:
            self._removing.add(uid)
            self._in_background(self._remove_ended(pod, why))
        return end

    async def _remove_ended(self, pod: Mapping, why: str) -> None:
        uid = (pod.get("metadata") or {}).get("uid") or ""
        try:
            await self.remove_server_pod(pod, f"the server ended ({why})")
        except Exception as e:  # noqa: BLE001 - the next poll, or the next hub start, tries again
            self.log.warning("could not remove the ended server pod %s: %s", (pod.get("metadata") or {}).get("name"), e)
        finally:
            self._removing.discard(uid)

    async def remove_server_pod(self, pod: Mapping, why: str) -> None:
        """Delete a server's pod and every Secret of it (the API token's and each data
        mount's), all named by the pod itself: its name and uid, and the Secrets' uids from
        its annotations. Each delete names the uid it knows, so nothing of a newer server
        of the same name is touched; what is gone already is no error. Raises the API's
        error when the cluster refuses or does not answer."""
        meta = pod.get("metadata") or {}
        name, uid = meta.get("name") or "", meta.get("uid") or None
        ns = meta.get("namespace") or self.namespace
        annotations = meta.get("annotations") or {}
        self._handled(uid)  # its Secrets are deleted here, not again when the watch sees it go
        deleted = await self._delete("pod", name, grace=0, uid=uid, namespace=ns)
        secrets = [(objects.secret_name(name), annotations.get(objects.SECRET_UID_ANNOTATION) or None)]
        secrets += objects.mount_secrets_of(pod)
        removed = []
        for secret, secret_uid in secrets:
            if secret_uid is None and self._launching[name]:
                continue  # by name alone it could be the Secret a new launch of this server just made
            if await self._delete("secret", secret, uid=secret_uid, namespace=ns):
                removed.append(secret)
        if deleted or removed:
            self.log.info("removed pod %s%s: %s", name, f" and Secrets {', '.join(removed)}" if removed else "", why)
