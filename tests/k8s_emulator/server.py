"""The HTTP face: kube-apiserver paths for core/v1, discovery, watch streaming, and /_emulator/.

Every API request is counted per (verb, resource) and logged (for the bench); fault rules apply
before the handler runs. Errors are `Status` objects with the apiserver's codes and reasons.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from typing import Any

from aiohttp import web

from .cluster import Cluster
from .store import RESOURCES, Watcher
from .util import ApiError, bad_request, parse_field_selector, parse_label_selector, status_object

VERSION = {"major": "1", "minor": "33", "gitVersion": "v1.33.0", "gitCommit": "emulator",
           "gitTreeState": "clean", "buildDate": "2025-04-23T00:00:00Z", "goVersion": "go1.24.2",
           "compiler": "gc", "platform": "linux/amd64", "emulationMajor": "1", "emulationMinor": "33",
           "minCompatibilityMajor": "1", "minCompatibilityMinor": "32"}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def classify(method: str, parts: list[str]) -> tuple[str, str, str | None, str | None, str | None]:
    """(verb, resource[/sub], namespace, name, subresource) for /api/v1/... path parts."""
    ns = name = sub = None
    if len(parts) >= 2 and parts[0] == "namespaces" and len(parts) >= 3 and parts[2] in RESOURCES:
        ns, rest = parts[1], parts[2:]
    else:
        rest = parts
    resource = rest[0] if rest else ""
    if len(rest) >= 2:
        name = rest[1]
    if len(rest) >= 3:
        sub = rest[2]
    collection = name is None
    verb = {"GET": "list" if collection else "get", "POST": "create", "PUT": "update", "PATCH": "patch",
            "DELETE": "deletecollection" if collection else "delete"}.get(method, method.lower())
    return verb, resource + (f"/{sub}" if sub else ""), ns, name, sub


def _bool(q: str | None) -> bool:
    return (q or "").lower() in ("1", "true", "yes")


class Server:
    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.app = web.Application(middlewares=[self.middleware], client_max_size=16 * 1024 * 1024)
        r = self.app.router
        r.add_get("/version", self.version)
        r.add_get("/version/", self.version)
        r.add_get("/api", self.api_versions)
        r.add_get("/api/", self.api_versions)
        r.add_get("/api/v1", self.api_resources)
        r.add_get("/apis", self.api_groups)
        for p in ("/healthz", "/readyz", "/livez"):
            r.add_get(p, self.ok)
        r.add_route("*", "/_emulator/{op}", self.control)
        r.add_route("*", "/api/v1/{tail:.*}", self.dispatch)
        self.watch_tasks: set[asyncio.Task] = set()

    # ---------------------------------------------------------------- middleware
    @web.middleware
    async def middleware(self, request: web.Request, handler):
        path = request.path
        if path.startswith("/_emulator/"):
            return await handler(request)
        t0 = time.time()
        verb, resource = "get", path
        if path.startswith("/api/v1/"):
            parts = [p for p in path[len("/api/v1/"):].split("/") if p]
            verb, resource, *_ = classify(request.method, parts)
            if verb == "list" and _bool(request.query.get("watch")):
                verb = "watch"
        self.cluster.counters[(verb, resource)] += 1
        entry = {"t": t0, "method": request.method, "path": path, "query": request.query_string,
                 "verb": verb, "resource": resource, "user_agent": request.headers.get("User-Agent", "")}
        self.cluster.request_log.append(entry)
        try:
            rule = self.cluster.faults.match(request.method, path + ("?" + request.query_string
                                                                     if request.query_string else ""))
            if rule is not None:
                entry["fault"] = rule.action
                if rule.action == "hang":
                    await asyncio.sleep(rule.seconds)
                elif rule.action == "drop":
                    if request.transport:
                        request.transport.close()
                    raise ApiError(500, "InternalError", "connection dropped")
                elif rule.status == 429:
                    raise ApiError(429, "TooManyRequests", "the server has received too many requests and has "
                                   "asked us to try again later", {"retryAfterSeconds": rule.retry_after},
                                   {"Retry-After": str(rule.retry_after)})
                else:
                    reasons = {500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout", 403: "Forbidden",
                               401: "Unauthorized", 409: "Conflict", 404: "NotFound"}
                    raise ApiError(rule.status, reasons.get(rule.status, "InternalError"),
                                   "Internal error occurred: injected fault" if rule.status == 500
                                   else f"injected fault ({rule.status})")
            resp = await handler(request)
        except ApiError as e:
            resp = web.Response(status=e.code, text=_dumps(e.status()), content_type="application/json",
                                headers=e.headers)
        except web.HTTPException:
            raise
        except Exception as e:  # an emulator bug: answer like the apiserver would, keep serving
            self.cluster.log.exception("handler failed for %s %s", request.method, path)
            resp = web.Response(status=500, content_type="application/json",
                                text=_dumps(status_object(500, "InternalError", f"Internal error occurred: {e}")))
        entry["status"] = resp.status
        entry["duration"] = time.time() - t0
        return resp

    # ---------------------------------------------------------------- discovery
    async def ok(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response(VERSION)

    async def api_versions(self, request: web.Request) -> web.Response:
        return web.json_response({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{request.host}"}]})

    async def api_groups(self, request: web.Request) -> web.Response:
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})

    async def api_resources(self, request: web.Request) -> web.Response:
        res = []
        for r in RESOURCES.values():
            entry = {"name": r.plural, "singularName": r.kind.lower(), "namespaced": r.namespaced, "kind": r.kind,
                     "verbs": list(r.verbs)}
            if r.short:
                entry["shortNames"] = list(r.short)
            res.append(entry)
            if r.plural in ("pods", "services", "persistentvolumeclaims", "nodes", "namespaces"):
                res.append({"name": f"{r.plural}/status", "singularName": "", "namespaced": r.namespaced,
                            "kind": r.kind, "verbs": ["get", "patch", "update"]})
        res += [{"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
                {"name": "pods/eviction", "singularName": "", "namespaced": True, "group": "policy",
                 "version": "v1", "kind": "Eviction", "verbs": ["create"]}]
        return web.json_response({"kind": "APIResourceList", "groupVersion": "v1", "resources": res})

    # ---------------------------------------------------------------- core/v1
    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.match_info["tail"].split("/") if p]
        if not parts:
            return await self.api_resources(request)
        verb, _, ns, name, sub = classify(request.method, parts)
        resource = parts[2] if ns is not None else parts[0]
        if resource not in RESOURCES:
            raise ApiError(404, "NotFound", "the server could not find the requested resource",
                           {"group": "", "kind": resource})
        info = RESOURCES[resource]
        if info.namespaced and ns is None and name is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not info.namespaced and ns is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        q = request.query
        dry_run = bool(q.get("dryRun"))
        c = self.cluster
        m = request.method
        if sub is not None:
            return await self.subresource(request, resource, ns, name, sub)
        if name is None:
            if m == "GET":
                labels = parse_label_selector(q.get("labelSelector"))
                fields = parse_field_selector(resource, q.get("fieldSelector"))
                if _bool(q.get("watch")):
                    return await self.watch(request, resource, ns, labels, fields)
                rv, match = q.get("resourceVersion"), q.get("resourceVersionMatch")
                if rv not in (None, "", "0") and match == "Exact" and int(rv) < c.store.compacted_rv:
                    raise ApiError(410, "Expired", f"too old resource version: {rv} ({c.store.compacted_rv + 1})")
                return self._json(200, c.list(resource, ns, labels, fields))
            if m == "POST":
                body = await self._body(request)
                return self._json(201, c.create(resource, ns if info.namespaced else None, body, dry_run))
            if m == "DELETE":
                labels = parse_label_selector(q.get("labelSelector"))
                fields = parse_field_selector(resource, q.get("fieldSelector"))
                opts = self._delete_options(request, await self._body(request, optional=True))
                out = c.list(resource, ns, labels, fields)
                for it in out["items"]:
                    try:
                        c.delete(resource, ns, it["metadata"]["name"], opts, dry_run)
                    except ApiError:
                        pass
                return self._json(200, out)
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if m == "GET":
            return self._json(200, c.get(resource, ns, name))
        if m == "PUT":
            return self._json(200, c.replace(resource, ns, name, await self._body(request)))
        if m == "PATCH":
            body = await self._body(request)
            return self._json(200, c.patch(resource, ns, name, body, request.headers.get("Content-Type", "")))
        if m == "DELETE":
            opts = self._delete_options(request, await self._body(request, optional=True))
            code, out = c.delete(resource, ns, name, opts, dry_run)
            return self._json(code, out)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    async def subresource(self, request, resource, ns, name, sub) -> web.StreamResponse:
        c = self.cluster
        m = request.method
        if sub == "status":
            if m == "GET":
                return self._json(200, c.get(resource, ns, name))
            if m == "PUT":
                return self._json(200, c.replace(resource, ns, name, await self._body(request), status_only=True))
            if m == "PATCH":
                return self._json(200, c.patch(resource, ns, name, await self._body(request),
                                               request.headers.get("Content-Type", ""), status_only=True))
        if resource == "pods" and sub == "log" and m == "GET":
            return web.Response(text=c.pod_log(ns, name, request.query.get("container")), content_type="text/plain")
        if resource == "pods" and sub == "eviction" and m == "POST":
            c.get("pods", ns, name)
            return self._json(201, c.evict_api(ns, name, await self._body(request, optional=True)))
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    @staticmethod
    def _json(code: int, obj: Any) -> web.Response:
        return web.Response(status=code, text=_dumps(obj), content_type="application/json")

    @staticmethod
    async def _body(request: web.Request, optional: bool = False) -> Any:
        raw = await request.read()
        if not raw:
            if optional:
                return {}
            raise bad_request("the server rejected our request due to an error in our request: empty body")
        try:
            return json.loads(raw)
        except ValueError as e:
            if (request.headers.get("Content-Type") or "").startswith("application/apply-patch+yaml"):
                import yaml
                return yaml.safe_load(raw)
            raise bad_request(f"the server rejected our request due to an error in our request: {e}") from None

    @staticmethod
    def _delete_options(request: web.Request, body: Any) -> dict:
        opts = dict(body) if isinstance(body, dict) else {}
        q = request.query
        if "gracePeriodSeconds" in q:
            opts["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
        if "propagationPolicy" in q:
            opts["propagationPolicy"] = q["propagationPolicy"]
        if "orphanDependents" in q:
            opts["orphanDependents"] = _bool(q["orphanDependents"])
        pol = opts.get("propagationPolicy")
        if pol not in (None, "Orphan", "Background", "Foreground"):
            raise ApiError(422, "Invalid", f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: '
                                           f'Unsupported value: "{pol}": supported values: "Foreground", '
                                           '"Background", "Orphan", "nil"')
        return opts

    # ---------------------------------------------------------------- watch
    async def watch(self, request: web.Request, resource: str, ns: str | None, labels, fields) -> web.StreamResponse:
        c = self.cluster
        q = request.query
        timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else c.default_watch_timeout
        bookmarks = _bool(q.get("allowWatchBookmarks"))
        w = Watcher(resource, ns, labels, fields)
        rv = q.get("resourceVersion")
        send_initial = _bool(q.get("sendInitialEvents"))
        kind = RESOURCES[resource].kind
        try:
            initial = c.store.start_watch(w, None if send_initial else rv)
        except ApiError as e:
            if e.code != 410:
                raise
            # the apiserver answers 200 and streams one ERROR event carrying the Status
            resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            await resp.prepare(request)
            await resp.write((_dumps({"type": "ERROR", "object": e.status()}) + "\n").encode())
            await resp.write_eof()
            return resp
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                       "Transfer-Encoding": "chunked"})
        try:
            await resp.prepare(request)
            for ev in initial:
                await resp.write(self._event_line(ev, kind))
            if send_initial and bookmarks:
                await resp.write(self._bookmark(kind, c.store.rv, initial_end=True))
            deadline = time.monotonic() + timeout
            last_bookmark = time.monotonic()
            while True:
                now = time.monotonic()
                left = deadline - now
                if left <= 0:
                    if bookmarks:
                        await resp.write(self._bookmark(kind, c.store.rv))
                    break
                wait = min(left, c.bookmark_interval - (now - last_bookmark)) if bookmarks else left
                try:
                    ev = await asyncio.wait_for(w.queue.get(), timeout=max(wait, 0.001))
                except asyncio.TimeoutError:
                    if bookmarks and time.monotonic() - last_bookmark >= c.bookmark_interval:
                        await resp.write(self._bookmark(kind, c.store.rv))
                        last_bookmark = time.monotonic()
                    continue
                if "_drop" in ev:
                    if ev["_drop"] and request.transport is not None:
                        request.transport.abort() if hasattr(request.transport, "abort") else request.transport.close()
                        return resp
                    break
                await resp.write(self._event_line(ev, kind))
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError, RuntimeError):
            pass
        finally:
            c.store.stop_watch(w)
        return resp

    @staticmethod
    def _event_line(ev: dict, kind: str) -> bytes:
        obj = dict(ev["object"])
        obj.setdefault("kind", kind)
        obj.setdefault("apiVersion", "v1")
        return (_dumps({"type": ev["type"], "object": obj}) + "\n").encode()

    @staticmethod
    def _bookmark(kind: str, rv: int, initial_end: bool = False) -> bytes:
        meta: dict = {"resourceVersion": str(rv), "creationTimestamp": None}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj: dict = {"kind": kind, "apiVersion": "v1", "metadata": meta}
        if kind == "Pod":
            obj.update({"spec": {"containers": None}, "status": {}})
        return (_dumps({"type": "BOOKMARK", "object": obj}) + "\n").encode()

    # ---------------------------------------------------------------- /_emulator/
    async def control(self, request: web.Request) -> web.Response:
        op = request.match_info["op"]
        fn = getattr(self.cluster, f"ctl_{op}", None)
        if fn is None:
            return web.json_response({"error": f"unknown control {op!r}"}, status=404)
        kwargs = {}
        if request.method in ("POST", "PUT"):
            raw = await request.read()
            kwargs = json.loads(raw) if raw else {}
        else:
            kwargs = dict(request.query)
        try:
            result = fn(**kwargs)
            if inspect.isawaitable(result):
                result = await result
        except ApiError as e:
            return web.json_response(e.status(), status=e.code)
        except (TypeError, ValueError) as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response({"result": result})
