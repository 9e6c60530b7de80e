"""`DownHosts`: the servers whose host did not answer a poll — since when, and those given
up on (declared stopped after the backend's grace; stopped for good once their host answers
again, so their GPUs are freed)."""

from __future__ import annotations

import time


class DownHosts:
    """Per backend; keyed by session directory (one server each)."""

    def __init__(self) -> None:
        self._since: dict[str, float] = {}  # session dir -> time.monotonic() of the first failed poll
        self._given_up: dict[str, list[dict]] = {}  # host -> saved states of servers given up on

    def unanswered(self, session_dir: str) -> float:
        """A poll of ``session_dir``'s server got no answer: seconds since the first such."""
        return time.monotonic() - self._since.setdefault(session_dir, time.monotonic())

    def answered(self, session_dir: str | None) -> None:
        """Its host answered (or it was stopped): the count starts again."""
        self._since.pop(session_dir, None)

    def give_up(self, state: dict) -> None:
        """The server of ``state`` is declared stopped while its host is down."""
        self.answered(state["session_dir"])
        self._given_up.setdefault(state["host"], []).append(dict(state))

    def take_given_up(self, host: str) -> list[dict]:
        """The servers given up on ``host`` (it answers again): to stop now, once."""
        return self._given_up.pop(host, None) or []
