"""The backend's line to the cluster: one API client, and the create/read/delete calls every
object goes through (a retried create that was applied after all is recognised by its
launch id; a delete of what is already gone is not an error).

`ClusterConnection` is one of the parts `KubernetesBackend` is composed of; it owns the API
client and the namespace it resolves (every other part reads ``namespace`` from it).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from ..base import BackendError
from . import objects
from .api import ApiError, call
from .settings import KubernetesSettings

IN_CLUSTER_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class ClusterConnection:
    """The CoreV1Api of one backend, and the create/read/delete calls its parts make."""

    def __init__(self, name: str, settings: KubernetesSettings, log: logging.Logger):
        self.name = name
        self.settings = settings
        self.log = log
        #: the namespace servers run in: the settings', else resolved on connecting
        self.namespace: str | None = settings.namespace
        self._api_client: Any = None
        self._core: Any = None
        self._connect_lock: asyncio.Lock | None = None

    async def api(self):
        """The CoreV1Api (created once); resolves the namespace."""
        if self._core is not None:
            return self._core
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            if self._core is not None:
                return self._core
            from kubernetes_asyncio import client, config

            s = self.settings
            cfg = type.__call__(client.Configuration)
            in_cluster = s.in_cluster if s.in_cluster is not None else bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
            context_ns = None
            try:
                if in_cluster:
                    config.load_incluster_config(client_configuration=cfg)
                else:
                    loader = await config.load_kube_config(
                        config_file=s.kubeconfig, context=s.context, client_configuration=cfg, persist_config=False
                    )
                    context_ns = ((loader.current_context or {}).get("context") or {}).get("namespace")
            except Exception as e:  # noqa: BLE001 - config errors come in many types
                raise BackendError(f"cannot load the Kubernetes credentials of backend {self.name}: {e}") from None
            if self.namespace is None:
                if in_cluster and os.path.exists(IN_CLUSTER_NAMESPACE):
                    with open(IN_CLUSTER_NAMESPACE) as f:
                        self.namespace = f.read().strip() or "default"
                else:
                    self.namespace = context_ns or "default"
            self._api_client = client.ApiClient(configuration=cfg)
            self._core = client.CoreV1Api(self._api_client)
            return self._core

    async def call(self, fn, *args, what: str = "", **kwargs) -> Any:
        s = self.settings
        return await call(fn, *args, retries=s.api_retries, timeout=s.api_timeout, log=self.log, what=what, **kwargs)

    async def create(self, fn, manifest: dict, launch_id: str, what: str, wait_gone=None) -> dict:
        """Create ``manifest``; a 409 from a retried try that was applied after all returns
        the existing object, a leftover from an earlier server is removed and replaced."""
        name = manifest["metadata"]["name"]
        for attempt in range(2):
            try:
                return await self.call(fn, self.namespace, manifest, what=f"create {what}")
            except ApiError as e:
                if e.status != 409 or attempt:
                    raise
            existing = await self.read(what, name)
            annotations = ((existing or {}).get("metadata") or {}).get("annotations") or {}
            if existing is not None and annotations.get(objects.LAUNCH_ANNOTATION) == launch_id:
                return existing
            self.log.info("replacing a leftover %s %s", what, name)
            await self.delete(what, name, grace=0)
            if wait_gone is not None:
                await wait_gone()
        raise AssertionError("unreachable")

    async def read(self, what: str, name: str) -> dict | None:
        core = await self.api()
        fn = {"pod": core.read_namespaced_pod, "secret": core.read_namespaced_secret}[what]
        try:
            return await self.call(fn, name, self.namespace, what=f"read {what}")
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def delete(self, what: str, name: str, *, grace: int | None = None, uid: str | None = None, namespace: str | None = None) -> bool:
        """Delete one object; False when it was already gone (404, or another uid: 409)."""
        core = await self.api()
        fn = {
            "pod": core.delete_namespaced_pod,
            "secret": core.delete_namespaced_secret,
            "claim": core.delete_namespaced_persistent_volume_claim,
        }[what]
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if grace is not None:
            body["gracePeriodSeconds"] = grace
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            await self.call(fn, name, namespace or self.namespace, body=body, what=f"delete {what}")
            return True
        except ApiError as e:
            if e.status in (404, 409):
                return False
            raise

    async def patch_pod(self, name: str, body: dict, *, namespace: str | None = None) -> bool:
        """Strategic-merge ``body`` into pod ``name``; False when it is gone (404) or is a
        newer pod of the same name (``body`` names the uid: 409/422)."""
        core = await self.api()
        try:
            await self.call(core.patch_namespaced_pod, name, namespace or self.namespace, body, what="patch pod")
            return True
        except ApiError as e:
            if e.status in (404, 409) or (e.status == 422 and "uid" in e.message):
                return False
            raise

    async def close(self) -> None:
        if self._api_client is not None:
            await self._api_client.close()
            self._api_client = None
            self._core = None
