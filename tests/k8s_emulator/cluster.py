"""The emulated cluster: API semantics (create/get/list/replace/patch/delete) and controllers
(scheduler, kubelet, garbage collector, PVC binder and protection). The test controls
(`ctl_*`) are a mixin in controls.py.

Everything runs on one asyncio loop; HTTP handlers and controls call into it from there.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import logging
import random
import time
from collections import Counter
from typing import Any

from . import deadline
from .controls import ClusterControls
from .events import EventRecorder
from .faults import Faults
from .kubelet import Kubelet, set_condition
from .patch import json_patch, merge_patch, strategic_merge
from .runner import Runner
from .scheduler import Scheduler, node_object
from .store import RESOURCES, Change, Store
from .util import (ApiError, Cause, bad_request, conflict, invalid, not_found, rfc3339)
from .validation import (DEFAULTERS, POD_UPDATE_FORBIDDEN, SchemaValidator, generate_name,
                         pod_spec_update_allowed, semantic_check)

log = logging.getLogger("k8s_emulator")

# Registries that return the deleted object rather than a Status (ReturnDeletedObject: true).
RETURNS_OBJECT = {"pods", "services", "persistentvolumeclaims", "namespaces"}


class Cluster(ClusterControls):
    def __init__(self, *, nodes: list[dict] | None = None, namespaces: tuple[str, ...] = ("default",),
                 run_pods: bool = False, k8s_version: str = "1.33", history_window: int = 10000,
                 bookmark_interval: float = 60.0, default_watch_timeout: float = 1800.0,
                 pull_delay: float = 0.02, start_delay: float = 0.02, kill_delay: float = 0.02,
                 schedule_delay: float = 0.0, gc_delay: float = 0.02, pvc_bind_delay: float = 0.0,
                 retry_interval: float = 0.2, crash_backoff: float = 1.0, workdir: str | None = None,
                 image_entrypoints: dict[str, list[str]] | None = None, runner_env: dict[str, str] | None = None,
                 log_bodies: bool = False, scheduler_seed: int | None = None,
                 pull_errors: dict[str, str] | None = None):
        self.log = log
        self.k8s_version = k8s_version
        self.store = Store(history_window)
        self.schema = SchemaValidator(k8s_version)
        self.recorder = EventRecorder(self.store)
        self.faults = Faults()
        self.validation_failures: list[dict] = []
        self.request_log: list[dict] = []
        self.counters: Counter = Counter()
        self.log_bodies = log_bodies
        self.bookmark_interval = bookmark_interval
        self.default_watch_timeout = default_watch_timeout
        self.gc_delay = gc_delay
        self.pvc_bind_delay = pvc_bind_delay
        self.runner = Runner(workdir, image_entrypoints=image_entrypoints, extra_env=runner_env)
        self.scheduler = Scheduler(self, delay=schedule_delay, seed=scheduler_seed)
        self.kubelet = Kubelet(self, run_pods=run_pods, runner=self.runner, pull_delay=pull_delay,
                               start_delay=start_delay, kill_delay=kill_delay, retry_interval=retry_interval,
                               crash_backoff=crash_backoff, pull_errors=pull_errors)
        self._initial_nodes = list(nodes or [])
        self._initial_namespaces = namespaces
        self._ips: dict[str, str] = {}
        self._free_ips: set[str] = set()
        # pods listen on <podIP>:8888: a random /24 of 127/8 per emulator keeps test runs that
        # share this machine from reaching each other's pods (127.0.x is left to the hubs)
        rnd = random.SystemRandom()
        self._next_ip = int(ipaddress.ip_address(f"127.{rnd.randint(16, 254)}.{rnd.randint(1, 254)}.2"))
        self.ready_times: dict[tuple[str, str], float] = {}  # (ns, name) → time.time() of first Ready
        self.store.listeners.append(self._on_change)
        self.started = time.time()

    async def start(self) -> None:
        self.scheduler.start()
        for ns in self._initial_namespaces:
            self._internal_create("namespaces", None, {"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": ns}})
        for spec in self._initial_nodes:
            self.store.create("nodes", node_object(spec))

    async def shutdown(self) -> None:
        for uid in list(self.kubelet.procs):
            await self.kubelet.stop_processes(uid, 1.0)
        self.runner.close()

    # ---------------------------------------------------------------- IPs
    def alloc_ip(self, uid: str) -> str:
        if uid in self._ips:
            return self._ips[uid]
        if self._free_ips:
            ip = min(self._free_ips, key=lambda a: int(ipaddress.ip_address(a)))
            self._free_ips.discard(ip)
        else:
            while True:
                ip = str(ipaddress.ip_address(self._next_ip))
                self._next_ip += 1
                if not ip.endswith((".0", ".255")):
                    break
        self._ips[uid] = ip
        return ip

    def release_ip(self, uid: str) -> None:
        ip = self._ips.pop(uid, None)
        if ip:
            self._free_ips.add(ip)

    # ---------------------------------------------------------------- controllers
    def _on_change(self, ch: Change) -> None:
        obj = ch.obj
        meta = obj["metadata"]
        loop = asyncio.get_running_loop()
        if ch.resource == "pods":
            if ch.type == "ADDED":
                if obj["spec"].get("nodeName"):
                    self.kubelet.pod_bound(obj)
                else:
                    self.scheduler.kick()
            elif ch.type == "MODIFIED":
                self.kubelet.pod_changed(obj)
                was_ready = _ready(ch.old)
                if _ready(obj) and not was_ready:
                    self.ready_times.setdefault((meta["namespace"], meta["name"]), time.time())
                if obj["status"].get("phase") in ("Succeeded", "Failed") and \
                        (ch.old or {}).get("status", {}).get("phase") not in ("Succeeded", "Failed"):
                    self.scheduler.kick()
            elif ch.type == "DELETED":
                self.scheduler.kick()
                self.scheduler.forget(meta["uid"])
                self.kubelet.forget(meta["uid"])
                self.recorder.forget(meta["uid"])
                loop.call_later(self.gc_delay, self._pvc_protection)
        elif ch.resource == "nodes":
            self.scheduler.kick()
        elif ch.resource == "persistentvolumeclaims":
            if ch.type == "ADDED":
                loop.call_later(self.pvc_bind_delay, self._bind_pvc, meta["namespace"], meta["name"], meta["uid"])
            else:
                self.scheduler.kick()
        elif ch.resource in ("secrets", "configmaps") and ch.type == "ADDED":
            pass  # the kubelet polls for them (retry_interval)
        if ch.type == "DELETED":
            loop.call_later(self.gc_delay, self._collect_dependents, meta.get("namespace"), meta.get("uid"))
        elif ch.type == "ADDED" and meta.get("ownerReferences"):
            loop.call_later(self.gc_delay, self._collect_if_orphaned, ch.resource, meta.get("namespace"),
                            meta["name"], meta["uid"])

    def _owners_gone(self, obj: dict) -> bool:
        refs = obj["metadata"].get("ownerReferences") or []
        return bool(refs) and all(self.store.by_uid(r.get("uid", "")) is None for r in refs)

    def _collect_dependents(self, namespace: str | None, uid: str | None) -> None:
        """Garbage collector (background propagation): dependents whose owners are all gone."""
        if not uid:
            return
        for res in RESOURCES:
            for obj in list(self.store.iter(res, namespace if RESOURCES[res].namespaced else None)):
                refs = obj["metadata"].get("ownerReferences") or []
                if any(r.get("uid") == uid for r in refs) and self._owners_gone(obj):
                    self._gc_delete(res, obj)

    def _collect_if_orphaned(self, resource: str, namespace: str | None, name: str, uid: str) -> None:
        obj = self.store.peek(resource, namespace, name)
        if obj is not None and obj["metadata"]["uid"] == uid and self._owners_gone(obj):
            self._gc_delete(resource, obj)

    def _gc_delete(self, resource: str, obj: dict) -> None:
        try:
            self.delete(resource, obj["metadata"].get("namespace"), obj["metadata"]["name"], {})
        except ApiError:
            pass

    def _bind_pvc(self, ns: str, name: str, uid: str) -> None:
        pvc = self.store.peek("persistentvolumeclaims", ns, name)
        if pvc is None or pvc["metadata"]["uid"] != uid or pvc["status"].get("phase") == "Bound":
            return

        def bind(p: dict) -> None:
            p["spec"]["volumeName"] = f"pvc-{uid}"
            anns = p["metadata"].setdefault("annotations", {})
            anns.setdefault("pv.kubernetes.io/bind-completed", "yes")
            anns.setdefault("pv.kubernetes.io/bound-by-controller", "yes")
            anns.setdefault("volume.beta.kubernetes.io/storage-provisioner", "emulator.local/hostpath")
            anns.setdefault("volume.kubernetes.io/storage-provisioner", "emulator.local/hostpath")
            p["status"] = {"phase": "Bound", "accessModes": list(p["spec"].get("accessModes") or []),
                           "capacity": {"storage": p["spec"]["resources"]["requests"]["storage"]}}

        out = self.store.mutate("persistentvolumeclaims", ns, name, bind)
        if out:
            self.recorder.controller(out, "Normal", "ProvisioningSucceeded",
                                     f"Successfully provisioned volume pvc-{uid}", "persistentvolume-controller")

    def _pvc_protection(self) -> None:
        """kubernetes.io/pvc-protection: a deleted claim goes once no pod uses it."""
        for pvc in list(self.store.iter("persistentvolumeclaims")):
            if pvc["metadata"].get("deletionTimestamp") and not self._pvc_in_use(pvc):
                ns, name = pvc["metadata"]["namespace"], pvc["metadata"]["name"]

                def drop(p: dict) -> None:
                    p["metadata"]["finalizers"] = [f for f in p["metadata"].get("finalizers") or []
                                                   if f != "kubernetes.io/pvc-protection"]

                out = self.store.mutate("persistentvolumeclaims", ns, name, drop)
                if out and not out["metadata"].get("finalizers"):
                    self.store.remove("persistentvolumeclaims", ns, name)

    def _pvc_in_use(self, pvc: dict) -> bool:
        ns, name = pvc["metadata"]["namespace"], pvc["metadata"]["name"]
        for pod in self.store.iter("pods", ns):
            if pod["status"].get("phase") in ("Succeeded", "Failed"):
                continue
            if any((v.get("persistentVolumeClaim") or {}).get("claimName") == name
                   for v in pod["spec"].get("volumes") or []):
                return True
        return False

    def bind(self, pod: dict, node: str) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]

        def b(p: dict) -> None:
            p["spec"]["nodeName"] = node
            set_condition(p, "PodScheduled", True)

        out = self.store.mutate("pods", ns, name, b)
        if out is None:
            return
        self.recorder.scheduler(out, "Normal", "Scheduled", f"Successfully assigned {ns}/{name} to {node}",
                                action="Binding")
        self.kubelet.pod_bound(out)

    def finish_pod_deletion(self, ns: str, name: str, uid: str) -> None:
        """The kubelet's final delete (grace 0) once containers are gone."""
        cur = self.store.peek("pods", ns, name)
        if cur is None or cur["metadata"]["uid"] != uid:
            return
        if [f for f in cur["metadata"].get("finalizers") or [] if f != "foregroundDeletion"]:
            return  # finalizers hold it; removed when they are patched away
        self.store.remove("pods", ns, name)

    # ---------------------------------------------------------------- request helpers
    def _check_namespace(self, resource: str, namespace: str | None) -> None:
        if RESOURCES[resource].namespaced and self.store.peek("namespaces", None, namespace or "") is None:
            raise not_found("namespaces", namespace or "")

    def _record_invalid(self, verb: str, resource: str, ns: str | None, name: str, causes: list[Cause],
                        body: Any, layer: str) -> None:
        err = invalid(RESOURCES[resource].kind, name, causes)
        self.validation_failures.append({
            "verb": verb, "resource": resource, "namespace": ns, "name": name, "layer": layer,
            "message": err.message, "causes": [c.as_dict() for c in causes], "object": copy.deepcopy(body),
        })
        raise err

    def _validate(self, verb: str, resource: str, ns: str | None, obj: dict, body: Any) -> None:
        name = obj.get("metadata", {}).get("name") or obj.get("metadata", {}).get("generateName") or ""
        cause = self.schema.check(_for_schema(obj))
        if cause is not None:
            self._record_invalid(verb, resource, ns, name, [cause], body, "schema")
        causes = semantic_check(obj)
        if causes:
            self._record_invalid(verb, resource, ns, name, causes, body, "semantic")

    @staticmethod
    def _fill_type(resource: str, body: Any) -> dict:
        if not isinstance(body, dict):
            raise bad_request("Object 'Kind' is missing in request body")
        kind = RESOURCES[resource].kind
        body = copy.deepcopy(body)
        if body.get("apiVersion", "v1") != "v1":
            raise bad_request(f"the API version in the data ({body['apiVersion']}) does not match the expected "
                              "API version (v1)")
        if body.get("kind", kind) != kind:
            raise bad_request(f"the kind in the data ({body['kind']}) does not match the expected kind ({kind})")
        body["apiVersion"], body["kind"] = "v1", kind
        body.setdefault("metadata", {})
        return body

    # ---------------------------------------------------------------- API verbs
    def create(self, resource: str, namespace: str | None, body: Any, dry_run: bool = False) -> dict:
        obj = self._fill_type(resource, body)
        meta = obj["metadata"]
        if RESOURCES[resource].namespaced:
            if meta.get("namespace") not in (None, "", namespace):
                raise bad_request("the namespace of the provided object does not match the namespace sent on "
                                  "the request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        self._check_namespace(resource, namespace)
        self._validate("create", resource, namespace, obj, body)
        for f in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                  "generation", "selfLink"):
            meta.pop(f, None)
        if not meta.get("name"):
            meta["name"] = generate_name(meta["generateName"])
            while self.store.peek(resource, namespace, meta["name"]) is not None:
                meta["name"] = generate_name(meta["generateName"])
        if resource == "pods":
            obj.pop("status", None)
        if resource in ("persistentvolumeclaims",):
            meta.setdefault("finalizers", [])
            if "kubernetes.io/pvc-protection" not in meta["finalizers"]:
                meta["finalizers"].append("kubernetes.io/pvc-protection")
        defaulter = DEFAULTERS.get(obj["kind"])
        if defaulter:
            defaulter(obj)
        if resource == "pods":
            meta.setdefault("generation", 1)
        if dry_run:
            if self.store.peek(resource, namespace, meta["name"]) is not None:
                from .util import already_exists
                raise already_exists(resource, meta["name"])
            return obj
        return self.store.create(resource, obj)

    def _internal_create(self, resource: str, namespace: str | None, obj: dict) -> dict:
        obj = copy.deepcopy(obj)
        if RESOURCES[resource].namespaced:
            obj["metadata"]["namespace"] = namespace
        d = DEFAULTERS.get(obj["kind"])
        if d:
            d(obj)
        return self.store.create(resource, obj)

    def get(self, resource: str, namespace: str | None, name: str) -> dict:
        return self.store.get(resource, namespace, name)

    def _write(self, verb: str, resource: str, namespace: str | None, name: str, new: dict, body: Any,
               status_only: bool = False) -> dict:
        cur = self.store.peek(resource, namespace, name)
        if cur is None:
            raise not_found(resource, name)
        meta = new.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise bad_request(f'the name of the object ({meta["name"]}) does not match the name on the URL ({name})')
        rv = meta.get("resourceVersion")
        if rv not in (None, "") and rv != cur["metadata"]["resourceVersion"]:
            raise conflict(resource, name)
        if meta.get("uid") not in (None, "", cur["metadata"]["uid"]):
            raise invalid(RESOURCES[resource].kind, name, [Cause("metadata.uid", "FieldValueInvalid",
                                                                 f'Invalid value: "{meta["uid"]}": field is immutable')])
        for f in ("uid", "creationTimestamp", "namespace", "name", "deletionTimestamp", "deletionGracePeriodSeconds"):
            if f in cur["metadata"]:
                meta[f] = cur["metadata"][f]
            else:
                meta.pop(f, None)
        if status_only:
            out = copy.deepcopy(cur)
            out["status"] = new.get("status", {})
            new = out
        elif "status" in cur and resource in ("pods", "services", "persistentvolumeclaims", "nodes", "namespaces"):
            new["status"] = copy.deepcopy(cur["status"])  # the main resource ignores status
        if resource == "pods" and not status_only:
            if not pod_spec_update_allowed(cur["spec"], new.get("spec") or {}):
                causes = [Cause("spec", "FieldValueForbidden", POD_UPDATE_FORBIDDEN)]
                self._record_invalid(verb, resource, namespace, name, causes, body, "semantic")
            why = deadline.update_problem(cur["spec"], new.get("spec") or {})
            if why:
                causes = [Cause("spec.activeDeadlineSeconds", "FieldValueInvalid", why)]
                self._record_invalid(verb, resource, namespace, name, causes, body, "semantic")
        if resource == "secrets":
            DEFAULTERS["Secret"](new)
        self._validate(verb, resource, namespace, new, body)
        out = self.store.update(resource, new)
        if out["metadata"].get("deletionTimestamp") and not out["metadata"].get("finalizers") \
                and resource not in ("pods",):
            self.store.remove(resource, namespace, name)
        elif resource == "pods" and out["metadata"].get("deletionTimestamp") \
                and not out["metadata"].get("finalizers") and out["metadata"]["uid"] not in self.kubelet.terminating:
            self.finish_pod_deletion(namespace, name, out["metadata"]["uid"])
        return out

    def replace(self, resource: str, namespace: str | None, name: str, body: Any, status_only: bool = False) -> dict:
        obj = self._fill_type(resource, body)
        return self._write("update", resource, namespace, name, obj, body, status_only)

    def patch(self, resource: str, namespace: str | None, name: str, body: Any, content_type: str,
              status_only: bool = False) -> dict:
        cur = self.store.get(resource, namespace, name)
        ct = (content_type or "").split(";")[0].strip().lower()
        if ct == "application/json-patch+json":
            if not isinstance(body, list):
                raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
            new = json_patch(cur, body)
        elif ct == "application/merge-patch+json":
            new = merge_patch(cur, body)
        elif ct == "application/strategic-merge-patch+json":
            if not isinstance(body, dict):
                raise bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
            new = strategic_merge(cur, body)
        elif ct == "application/apply-patch+yaml":
            raise ApiError(415, "UnsupportedMediaType", "the emulator does not implement server-side apply")
        else:
            raise ApiError(415, "UnsupportedMediaType", 'the body of the request was in an unknown format - '
                                                       'accepted media types include: application/json-patch+json, '
                                                       'application/merge-patch+json, '
                                                       'application/apply-patch+yaml')
        # a patch carrying a resourceVersion is a precondition; otherwise the current one applies
        prv = body.get("metadata", {}).get("resourceVersion") if isinstance(body, dict) else None
        new.setdefault("metadata", {})["resourceVersion"] = prv or cur["metadata"]["resourceVersion"]
        return self._write("patch", resource, namespace, name, new, body, status_only)

    def list(self, resource: str, namespace: str | None, labels, fields) -> dict:
        items, rv = self.store.list(resource, namespace, labels, fields)
        for it in items:  # list items carry no apiVersion/kind, like the real server
            it.pop("apiVersion", None)
            it.pop("kind", None)
        return {"kind": f"{RESOURCES[resource].kind}List", "apiVersion": "v1",
                "metadata": {"resourceVersion": str(rv)}, "items": items}

    def delete(self, resource: str, namespace: str | None, name: str, options: dict,
               dry_run: bool = False) -> tuple[int, dict]:
        cur = self.store.peek(resource, namespace, name)
        if cur is None:
            raise not_found(resource, name)
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != cur["metadata"]["uid"]:
            raise ApiError(409, "Conflict", f"Precondition failed: UID in precondition: {pre['uid']}, "
                                            f"UID in object meta: {cur['metadata']['uid']}",
                           {"name": name, "kind": resource})
        if pre.get("resourceVersion") and pre["resourceVersion"] != cur["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", f"Precondition failed: ResourceVersion in precondition: "
                                            f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                            f"{cur['metadata']['resourceVersion']}", {"name": name, "kind": resource})
        if dry_run:
            return 200, copy.deepcopy(cur)
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is not None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        uid = cur["metadata"]["uid"]
        if policy == "Orphan":
            for res in RESOURCES:
                for dep in list(self.store.iter(res, namespace if RESOURCES[res].namespaced else None)):
                    refs = dep["metadata"].get("ownerReferences") or []
                    if any(r.get("uid") == uid for r in refs):
                        def strip(d: dict) -> None:
                            rest = [r for r in d["metadata"]["ownerReferences"] if r.get("uid") != uid]
                            if rest:
                                d["metadata"]["ownerReferences"] = rest
                            else:
                                d["metadata"].pop("ownerReferences")
                        self.store.mutate(res, dep["metadata"].get("namespace"), dep["metadata"]["name"], strip)
        elif policy == "Foreground":
            self._collect_dependents_now(namespace, uid)
        if resource == "pods":
            return 200, self._delete_pod(cur, options)
        if resource == "namespaces":
            return 200, self._delete_namespace(cur)
        finalizers = cur["metadata"].get("finalizers") or []
        if resource == "persistentvolumeclaims" and finalizers == ["kubernetes.io/pvc-protection"] \
                and not self._pvc_in_use(cur):
            finalizers = []
        if finalizers:
            if not cur["metadata"].get("deletionTimestamp"):
                def mark(o: dict) -> None:
                    o["metadata"]["deletionTimestamp"] = rfc3339()
                    o["metadata"]["deletionGracePeriodSeconds"] = 0
                return 200, self.store.mutate(resource, namespace, name, mark)
            return 200, copy.deepcopy(cur)
        gone = self.store.remove(resource, namespace, name)
        if resource in RETURNS_OBJECT:
            return 200, gone
        return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                     "details": {"name": name, "kind": resource, "uid": uid}}

    def _collect_dependents_now(self, namespace: str | None, uid: str) -> None:
        for res in RESOURCES:
            for dep in list(self.store.iter(res, namespace if RESOURCES[res].namespaced else None)):
                refs = dep["metadata"].get("ownerReferences") or []
                if any(r.get("uid") == uid for r in refs) and all(
                        r.get("uid") == uid or self.store.by_uid(r.get("uid", "")) is None for r in refs):
                    self._gc_delete(res, dep)

    def _delete_pod(self, cur: dict, options: dict) -> dict:
        ns, name, uid = cur["metadata"]["namespace"], cur["metadata"]["name"], cur["metadata"]["uid"]
        grace = options.get("gracePeriodSeconds")
        if grace is None:
            grace = cur["spec"].get("terminationGracePeriodSeconds", 30)
        grace = max(int(grace), 0)
        if not cur["spec"].get("nodeName") or cur["status"].get("phase") in ("Succeeded", "Failed"):
            grace = 0
        existing = cur["metadata"].get("deletionGracePeriodSeconds")
        if existing is not None and grace >= existing and grace != 0:
            return copy.deepcopy(cur)  # already terminating with a shorter or equal grace
        if grace == 0 and not (cur["metadata"].get("finalizers")):
            if cur["spec"].get("nodeName") and uid in self.kubelet.procs:
                asyncio.get_running_loop().create_task(self.kubelet.stop_processes(uid, 0))
            return self.store.remove("pods", ns, name)

        def mark(p: dict) -> None:
            p["metadata"]["deletionTimestamp"] = rfc3339(time.time() + grace)
            p["metadata"]["deletionGracePeriodSeconds"] = grace

        out = self.store.mutate("pods", ns, name, mark)
        if cur["spec"].get("nodeName"):
            self.kubelet.pod_deleting(out)
        return out

    def _delete_namespace(self, cur: dict) -> dict:
        name = cur["metadata"]["name"]

        def mark(o: dict) -> None:
            o["metadata"]["deletionTimestamp"] = rfc3339()
            o["status"]["phase"] = "Terminating"

        out = self.store.mutate("namespaces", None, name, mark)

        async def finalize() -> None:
            for res, info in RESOURCES.items():
                if info.namespaced:
                    for o in list(self.store.iter(res, name)):
                        try:
                            self.delete(res, name, o["metadata"]["name"], {"gracePeriodSeconds": 0})
                        except ApiError:
                            pass
            await asyncio.sleep(0.05)
            if self.store.peek("namespaces", None, name) is not None:
                self.store.remove("namespaces", None, name)

        asyncio.get_running_loop().create_task(finalize())
        return out

    def evict_api(self, namespace: str, name: str, body: dict) -> dict:
        """POST pods/{name}/eviction (policy/v1 Eviction): graceful delete (no PDBs here)."""
        self.delete("pods", namespace, name, (body or {}).get("deleteOptions") or {})
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def pod_log(self, namespace: str, name: str, container: str | None) -> str:
        cur = self.store.peek("pods", namespace, name)
        if cur is None:
            raise not_found("pods", name)
        import os
        c = container or cur["spec"]["containers"][0]["name"]
        path = os.path.join(self.runner.workdir, cur["metadata"]["uid"], f"{c}.log")
        if not os.path.exists(path):
            return ""
        with open(path, errors="replace") as f:
            return f.read()


def _ready(pod: dict | None) -> bool:
    if not pod:
        return False
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


def _for_schema(obj: dict) -> dict:
    """The object as the OpenAPI schema sees it: nulls dropped (Go zero values), as a client's JSON."""
    def clean(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if v is not None}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x
    return clean(obj)

