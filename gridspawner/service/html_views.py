"""The executed notebooks' HTML views (``runs/ID/html``), rendered once per run and kept in
the service's memory.

An ended run's executed notebook never changes, so its nbconvert rendering (a second or more
of CPU for a large notebook) is done once and kept in a bounded LRU: at most `MAX_BYTES` of
HTML in all, the least recently viewed dropped first, a page over `MAX_ONE` served but not
kept. Memory rather than the run store: the HTML is derived data (a new nbconvert renders it
anew, no stale file is left behind), the run store (perhaps a bucket the admin shares) is
not written by a page view, and a restart only costs one rendering per run viewed again.

Each view carries a weak ETag made from the run store, the run, its end time and the
renderer's version (`view_etag`): a browser revalidates with ``If-None-Match`` and gets a
304 without any reading or rendering. What is kept is exactly what was served, so the
sandbox headers of `runs_view.HTML_VIEW_HEADERS` apply to kept pages as to fresh ones."""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections import OrderedDict
from importlib.metadata import PackageNotFoundError, version
from typing import Awaitable, Callable

#: the most bytes of rendered HTML kept in all (the least recently viewed go first)
MAX_BYTES = 64 * 2**20
#: a rendered page larger than this is served but not kept
MAX_ONE = 16 * 2**20
#: raise when `runs_view.notebook_html` renders differently: every ETag changes with it
VIEW_VERSION = "1"

Key = tuple[str, str]  # (run store location, run id)


@functools.cache
def renderer_version() -> str:
    """What the HTML depends on besides the notebook: nbconvert's version and ours."""
    try:
        return f"nbconvert {version('nbconvert')} view {VIEW_VERSION}"
    except PackageNotFoundError:  # pragma: no cover - nbconvert is a dependency
        return f"view {VIEW_VERSION}"


def view_etag(location: str, run_id: str, finished: float | None) -> str:
    """The weak ETag of an ended run's HTML view (the same for as long as the run exists)."""
    raw = "\0".join((location, run_id, repr(finished), renderer_version()))
    return 'W/"' + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:32] + '"'


class HtmlViews:
    """A byte-bounded LRU of rendered views: (location, run id) → (ETag, HTML bytes)."""

    def __init__(self, max_bytes: int = MAX_BYTES, max_one: int = MAX_ONE):
        self.max_bytes, self.max_one = max_bytes, max_one
        self._pages: OrderedDict[Key, tuple[str, bytes]] = OrderedDict()
        self._bytes = 0
        self._pending: dict[tuple[Key, str], asyncio.Future] = {}
        #: renderings done (what the tests and the bench count)
        self.renders = 0

    @property
    def size(self) -> int:
        return self._bytes

    def get(self, key: Key, etag: str) -> bytes | None:
        kept = self._pages.get(key)
        if kept is None or kept[0] != etag:
            return None
        self._pages.move_to_end(key)
        return kept[1]

    def put(self, key: Key, etag: str, html: bytes) -> None:
        self.forget(*key)
        if len(html) > self.max_one:
            return
        self._pages[key] = (etag, html)
        self._bytes += len(html)
        while self._bytes > self.max_bytes:
            _, (_, old) = self._pages.popitem(last=False)
            self._bytes -= len(old)

    def forget(self, location: str, run_id: str) -> None:
        """Drop a run's view (the run was deleted)."""
        kept = self._pages.pop((location, run_id), None)
        if kept is not None:
            self._bytes -= len(kept[1])

    async def html(self, key: Key, etag: str, render: Callable[[], Awaitable[bytes]]) -> bytes:
        """The kept view, or ``render()``'s (kept); requests for the same view while it is
        being rendered wait for that one rendering."""
        kept = self.get(key, etag)
        if kept is not None:
            return kept
        pending = self._pending.get((key, etag))
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending[(key, etag)] = future
        try:
            html = await render()
            self.renders += 1
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as e:
            future.set_exception(e)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        finally:
            self._pending.pop((key, etag), None)
        self.put(key, etag, html)
        future.set_result(html)
        return html


#: the service's views (one service process per hub)
HTML_VIEWS = HtmlViews()
