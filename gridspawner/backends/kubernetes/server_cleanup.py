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

What it said when it ended (exit status and reason) is kept by pod uid (`ServerRemoval.end_of`),
so every later poll of that server answers the same, with the reason in the hub log once.

`remove_server_pod` is the one function that deletes a server's pod and Secrets given the
pod as the API returns it (name, uid, annotations); a sweep of orphaned pods reuses it.

`ServerRemoval` is one of the parts `KubernetesBackend` is composed of; it owns how each pod
ended and which pods are being removed now. The pod watch tells it every change (`on_pod`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from dataclasses import dataclass
from typing import Iterator, Mapping

import aiohttp

from ..base import BackendError
from . import objects
from .api import ApiError
from .connection import ClusterConnection
from .in_flight import BackgroundTasks, LaunchesInFlight
from .secret_cleanup import SecretCleanup

_NETWORK_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


async def delete_pod_and_secrets(connection: ClusterConnection, secrets: SecretCleanup, state: dict,
                                 grace: float, failure: str) -> bool:
    """Delete a server's or run's pod, its Secret and its mounts' Secrets, each by the uid
    ``state`` names (never the objects of a newer server of the same name); True when the pod
    was there to delete. Raises BackendError starting with ``failure`` ("could not …")."""
    ns = state.get("namespace")
    secrets.handled(state["uid"])  # the Secrets are deleted just below, not by the pod watch
    try:
        deleted = await connection.delete("pod", state["pod"], grace=grace, uid=state["uid"], namespace=ns)
        if state.get("secret"):
            await connection.delete("secret", state["secret"], uid=state.get("secret_uid"), namespace=ns)
        for item in state.get("mount_secrets") or ():
            if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str):
                await connection.delete("secret", item[0], uid=item[1] or None, namespace=ns)
    except ApiError as e:
        raise BackendError(f"{failure}: {e.message}") from None
    except _NETWORK_ERRORS as e:
        raise BackendError(f"{failure}: the cluster did not answer ({e or type(e).__name__})") from None
    return bool(deleted)


_REMEMBERED = 10000  # ended pods whose exit is kept (a bounded memory; polls come within minutes)


@dataclass
class PodEnd:
    """How a server's pod ended, as the hub's polls report it."""

    status: int  # exit status for JupyterHub (never None, never 0 for a vanished pod)
    why: str
    reported: bool = False  # the hub log has said why once


class ServerRemoval:
    """Deletes ended servers' pods and Secrets; remembers how each ended."""

    def __init__(self, connection: ClusterConnection, log: logging.Logger, in_flight: LaunchesInFlight,
                 tasks: BackgroundTasks, secrets: SecretCleanup):
        self.connection = connection
        self.log = log
        self.in_flight = in_flight
        self.tasks = tasks
        self.secrets = secrets
        #: uid of a pod that ended or vanished -> its exit status and why
        self._gone: collections.OrderedDict[str, PodEnd] = collections.OrderedDict()
        #: uids of ended pods being deleted now
        self._removing: set[str] = set()

    def end_of(self, uid: str) -> PodEnd | None:
        """How the pod ``uid`` ended, when this process saw it end or vanish."""
        return self._gone.get(uid)

    @contextlib.contextmanager
    def removing(self, uid: str) -> Iterator[bool]:
        """Yields whether the caller may remove the pod ``uid`` now (False: it is being
        removed already); no other removal of it starts inside this block."""
        if uid in self._removing:
            yield False
            return
        self._removing.add(uid)
        try:
            yield True
        finally:
            self._removing.discard(uid)

    def on_pod(self, kind: str, pod: dict) -> None:
        """What the pod watch saw: a pod deleted (outside the hub, or by a stop) never reads
        as a clean exit, and its Secrets go; a pod that ended by itself is removed."""
        if kind == "DELETED":
            term = objects.pod_terminated(pod)
            status = pod.get("status") or {}
            why = term[1] if term and term[1] != "the pod is being deleted" else ""
            if not why:
                why = "it was deleted outside the hub" + (
                    f" (last phase {status.get('phase')})" if status.get("phase") else ""
                )
            # a deleted pod never reads as a clean exit (unless it had ended by itself before)
            self.remember_end((pod.get("metadata") or {}).get("uid", ""), (term[0] if term else 0) or 1, why)
            self.secrets.pod_deleted(pod)
        else:
            self.server_ended(pod)  # ended by itself (exit, OOM kill, eviction): delete it and its Secrets

    def remember_end(self, uid: str, status: int, why: str) -> PodEnd:
        """Record how the pod ``uid`` ended (the first account wins: the reason it stopped
        is worth more than the deletion that followed)."""
        end = self._gone.get(uid)
        if end is None:
            end = self._gone[uid] = PodEnd(status, why)
            while len(self._gone) > _REMEMBERED:
                self._gone.popitem(last=False)
        return end

    def server_ended(self, pod: Mapping) -> PodEnd | None:
        """``pod`` ended by itself (phase Succeeded/Failed, and nobody is deleting it — a stop
        is not an end by itself): remember how, and delete it with its Secrets in the
        background, once per uid. None otherwise. A pod whose launch is still in flight is
        left to the launch, which cleans up after itself."""
        meta = pod.get("metadata") or {}
        if not objects.pod_finished(pod) or meta.get("deletionTimestamp") or objects.is_run(pod):
            return None  # a notebook run's pod is the runs executor's to collect (`batch`)
        uid = meta.get("uid") or ""
        status, why = objects.pod_terminated(pod) or (1, "ended")
        end = self.remember_end(uid, status, why)
        if uid and uid not in self._removing and not self.in_flight[meta.get("name") or ""]:
            self._removing.add(uid)
            self.tasks.start(self._remove_ended(pod, why))
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
        ns = meta.get("namespace") or self.connection.namespace
        annotations = meta.get("annotations") or {}
        self.secrets.handled(uid)  # its Secrets are deleted here, not again when the watch sees it go
        deleted = await self.connection.delete("pod", name, grace=0, uid=uid, namespace=ns)
        secrets = [(objects.secret_name(name), annotations.get(objects.SECRET_UID_ANNOTATION) or None)]
        secrets += objects.mount_secrets_of(pod)
        removed = []
        for secret, secret_uid in secrets:
            if secret_uid is None and self.in_flight[name]:
                continue  # by name alone it could be the Secret a new launch of this server just made
            if await self.connection.delete("secret", secret, uid=secret_uid, namespace=ns):
                removed.append(secret)
        if deleted or removed:
            self.log.info("removed pod %s%s: %s", name, f" and Secrets {', '.join(removed)}" if removed else "", why)
