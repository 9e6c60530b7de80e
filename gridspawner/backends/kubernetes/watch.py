"""Shared watches: one list+watch loop per (kind, namespace, selector) for the hub process.

Every spawner of the hub reads readiness, exit and progress from these caches instead of
polling the API. A watch that ends (server timeout, dropped connection) resumes from the
last resourceVersion it saw; when the server answers 410 Gone (that version was compacted
away) the watch lists once more and reports the differences as events, so no change is lost.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from typing import Any, Awaitable, Callable, Mapping

from .api import ApiError, backoff_delay, is_transient, read_json

Listener = Callable[[str, dict], None]
Predicate = Callable[[dict | None], bool]


class WatchGone(Exception):
    """410 Gone: the resourceVersion we hold is too old; a re-list is needed."""


def object_key(obj: Mapping) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


class SharedWatch:
    """List + watch one collection and keep it in memory.

    ``list_call(**kwargs)`` is a generated client method bound to its collection (e.g.
    ``functools.partial(core.list_namespaced_pod, namespace)``). With ``cache=False`` (events)
    nothing is kept but the uids already delivered, and the first list is not replayed.
    """

    def __init__(
        self,
        name: str,
        list_call: Callable[..., Awaitable[Any]],
        *,
        label_selector: str = "",
        field_selector: str = "",
        cache: bool = True,
        watch_timeout: int = 300,
        request_timeout: float = 30.0,
        log: logging.Logger | None = None,
    ):
        self.name = name
        self._list_call = list_call
        self._selectors = {}
        if label_selector:
            self._selectors["label_selector"] = label_selector
        if field_selector:
            self._selectors["field_selector"] = field_selector
        self._cache_enabled = cache
        self._watch_timeout = watch_timeout
        self._request_timeout = request_timeout
        self.log = log or logging.getLogger("gridspawner.kubernetes.watch")
        self.objects: dict[str, dict] = {}
        self.resource_version: str | None = None
        self._seen: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._listeners: list[Listener] = []
        self._waiters: dict[str, list[tuple[Predicate, asyncio.Future]]] = {}
        self._task: asyncio.Task | None = None
        self._synced = asyncio.Event()
        self._attempted = asyncio.Event()  # set after every failed attempt (wakes ready())
        self.error: BaseException | None = None
        self.last_event = 0.0
        # counters for tests and metrics
        self.lists = 0
        self.relists_after_gone = 0
        self.restarts = 0

    # ------------------------------------------------------------------ public
    def start(self) -> None:
        """Start the loop (once); cheap to call on every use."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"gridspawner-watch-{self.name}")

    async def ready(self, timeout: float) -> None:
        """Start if needed and wait for the first list. A permanent error (401, 403, 404 …)
        is raised at once; transient ones are retried until ``timeout``, then raised."""
        self.start()
        deadline = asyncio.get_running_loop().time() + timeout
        while not self._synced.is_set():
            if self.error is not None and not is_transient(self.error):
                raise self.error
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                if self.error is not None:
                    raise self.error
                raise asyncio.TimeoutError()
            self._attempted.clear()
            waiters = [asyncio.ensure_future(self._synced.wait()), asyncio.ensure_future(self._attempted.wait())]
            try:
                await asyncio.wait(waiters, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def get(self, key: str) -> dict | None:
        return self.objects.get(key)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(type, obj)`` on every ADDED/MODIFIED/DELETED; returns unsubscribe."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            try:
                self._listeners.remove(listener)
            except ValueError:
                pass

        return unsubscribe

    async def wait_for(self, key: str, predicate: Predicate, timeout: float | None = None) -> dict | None:
        """Wait until ``predicate(object or None)`` is true for ``key``; returns that object.

        Checked at once against the cache, then on every change of ``key``.
        """
        current = self.objects.get(key)
        if self.synced and predicate(current):
            return current
        future = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.setdefault(key, []).append(entry)
        if self.synced and predicate(self.objects.get(key)):  # changed while we registered
            future.set_result(self.objects.get(key))
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            waiters = self._waiters.get(key)
            if waiters and entry in waiters:
                waiters.remove(entry)
                if not waiters:
                    del self._waiters[key]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # ------------------------------------------------------------------ loop
    async def _run(self) -> None:
        attempt = 0
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                await self._watch()
                attempt = 0
            except asyncio.CancelledError:
                raise
            except WatchGone:
                self.relists_after_gone += 1
                self.log.info("watch %s: resourceVersion %s is gone; listing again", self.name, self.resource_version)
                need_list = True
            except Exception as e:  # noqa: BLE001 - the loop must survive anything
                self.error = e
                self._attempted.set()
                self.restarts += 1
                delay = backoff_delay(attempt, base=0.5, cap=10.0)
                attempt += 1
                level = logging.WARNING if attempt <= 3 or attempt % 20 == 0 else logging.DEBUG
                self.log.log(level, "watch %s failed (%s); resuming in %.1f s", self.name, e or type(e).__name__, delay)
                await asyncio.sleep(delay)

    async def _list(self) -> None:
        response = await self._list_call(
            _preload_content=False, _request_timeout=self._request_timeout, **self._selectors
        )
        body = await read_json(response)
        self.lists += 1
        items = body.get("items") or []
        first = not self._synced.is_set()
        if self._cache_enabled:
            fresh = {object_key(o): o for o in items}
            for key in list(self.objects):
                if key not in fresh:
                    self._apply("DELETED", self.objects[key])
            for key, obj in fresh.items():
                old = self.objects.get(key)
                if old is None:
                    self._apply("ADDED", obj)
                elif (old.get("metadata") or {}).get("resourceVersion") != (obj.get("metadata") or {}).get("resourceVersion"):
                    self._apply("MODIFIED", obj)
        else:
            for obj in items:
                if self._remember(obj) and not first:  # history is not news; missed events are
                    self._apply("ADDED", obj)
        self.resource_version = (body.get("metadata") or {}).get("resourceVersion")
        self.error = None
        self._synced.set()
        self._wake_all()

    async def _watch(self) -> None:
        params = dict(self._selectors)
        params.update(
            watch=True,
            resource_version=self.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self._watch_timeout,
        )
        try:
            # (connect, read) timeouts: the server ends the watch after watch_timeout and
            # sends bookmarks meanwhile, so a silence this long means a dead connection.
            response = await self._list_call(
                _preload_content=False,
                _request_timeout=(self._request_timeout, min(self._watch_timeout + 30, 150)),
                **params,
            )
        except ApiError as e:
            if e.status == 410:
                raise WatchGone() from None
            raise
        try:
            if response.status == 410:
                raise WatchGone()
            if response.status != 200:
                await read_json(response)  # raises ApiError
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        self._line(line)
            if buffer.strip():
                self._line(buffer)
        finally:
            response.release()

    def _line(self, line: bytes) -> None:
        event = json.loads(line)
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise WatchGone()
            raise ApiError(int(obj.get("code") or 500), obj.get("reason", ""), obj)
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if rv:
            self.resource_version = rv
        if kind == "BOOKMARK":
            return
        self.last_event = time.time()
        if self._cache_enabled:
            self._apply(kind, obj)
        elif self._remember(obj):
            self._apply(kind, obj)

    def _remember(self, obj: Mapping) -> bool:
        """For uncached watches: True when this version of the object was not delivered yet."""
        meta = obj.get("metadata") or {}
        uid, rv = meta.get("uid") or object_key(obj), meta.get("resourceVersion", "")
        if self._seen.get(uid) == rv:
            return False
        self._seen[uid] = rv
        self._seen.move_to_end(uid)
        while len(self._seen) > 20000:
            self._seen.popitem(last=False)
        return True

    def _apply(self, kind: str, obj: dict) -> None:
        key = object_key(obj)
        if self._cache_enabled:
            if kind == "DELETED":
                self.objects.pop(key, None)
            else:
                self.objects[key] = obj
        for listener in list(self._listeners):
            try:
                listener(kind, obj)
            except Exception:  # noqa: BLE001 - one bad listener must not stop the watch
                self.log.exception("watch %s: listener failed", self.name)
        self._wake(key)

    def _wake(self, key: str) -> None:
        waiters = self._waiters.get(key)
        if not waiters:
            return
        current = self.objects.get(key)
        for predicate, future in list(waiters):
            if not future.done():
                try:
                    if predicate(current):
                        future.set_result(current)
                except Exception as e:  # noqa: BLE001
                    future.set_exception(e)

    def _wake_all(self) -> None:
        for key in list(self._waiters):
            self._wake(key)
