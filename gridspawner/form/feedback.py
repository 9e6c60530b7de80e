"""What the spawn form shows after an invalid submission: the submitted values and the field
errors, kept in this process's memory for the next render of *that server's* form.

Entries are keyed by (user, server), expire after ``ttl`` seconds and are bounded in number
(the oldest go first), so a hub with many users never grows this. Values are stored as the
caller gives them: callers strip secrets first.

JupyterHub re-renders a form whose submission failed through the user's *default* spawner
(``SpawnHandler`` calls ``user.spawner.get_options_form()``), whatever server was being
started; the page still posts back to the named server's URL. So a render for the default
server first takes the user's entry made within the last ``rerender_window`` seconds, which
is the submission that request just refused; any other render only takes its own server's.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable

Feedback = tuple[dict, dict]  # (values to show, field → error message)


class FormFeedback:
    def __init__(
        self,
        *,
        max_entries: int = 1000,
        ttl: float = 600.0,
        rerender_window: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.max_entries = max_entries
        self.ttl = ttl
        self.rerender_window = rerender_window
        self._clock = clock
        # (user, server) -> (stored at, values, errors); oldest first
        self._items: OrderedDict[tuple[str, str], tuple[float, dict, dict]] = OrderedDict()

    def _purge(self) -> None:
        oldest_kept = self._clock() - self.ttl
        while self._items:
            key, (stored, _, _) = next(iter(self._items.items()))
            if stored >= oldest_kept and len(self._items) <= self.max_entries:
                break
            del self._items[key]

    def put(self, user: str, server: str, values: dict, errors: dict) -> None:
        """Remember a refused submission of ``user``'s server ``server`` ("" = default)."""
        key = (user, server)
        self._items.pop(key, None)
        self._items[key] = (self._clock(), dict(values), dict(errors))
        self._purge()

    def take(self, user: str, server: str) -> Feedback | None:
        """The feedback to show in the form being rendered for (``user``, ``server``), removed."""
        self._purge()
        if server == "":
            newest = self._newest(user)
            if newest is not None and self._clock() - self._items[newest][0] <= self.rerender_window:
                return self._pop(newest)
        return self._pop((user, server)) if (user, server) in self._items else None

    def _newest(self, user: str) -> tuple[str, str] | None:
        for key in reversed(self._items):
            if key[0] == user:
                return key
        return None

    def _pop(self, key: tuple[str, str]) -> Feedback:
        _, values, errors = self._items.pop(key)
        return values, errors

    def __len__(self) -> int:
        self._purge()
        return len(self._items)
