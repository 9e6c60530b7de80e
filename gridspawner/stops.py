"""A server's upcoming stops: when the hub will stop it, and why.

Reasons: ``max_runtime`` (the profile's or the hub's maximum run time), ``quota`` (its user's
or group's GPU-hours ran out: stopped after the grace period) and, later, ``idle``. The same
words are the stop reasons of usage records and the ``reason`` of the JupyterLab
extension's stops file (docs/admin/lab-extension.md). `GridSpawner.upcoming_stops` gives
them to pages (the hub's home page shows them).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Iterable, Mapping


@dataclass(frozen=True)
class UpcomingStop:
    """The hub stops the server at ``at`` (epoch seconds) because of ``reason``; ``message``
    completes "…stopped in 10 min because …" (empty: the reason's usual words)."""

    reason: str
    at: float
    message: str = ""

    def stops_entry(self) -> dict:
        """This stop as an entry of the stops file."""
        entry: dict = {"reason": self.reason, "at": int(self.at)}
        if self.message:
            entry["message"] = self.message
        return entry


def stops_document(entries: Iterable[Mapping]) -> str:
    """The stops file's JSON: ``{"stops": [...]}`` (compact, ASCII) — written as a file on
    hosts, as the pod annotation projected into the stops file on Kubernetes."""
    return json.dumps({"stops": [dict(e) for e in entries]}, separators=(",", ":"), ensure_ascii=True)


def cancelled_entry(reason: str) -> dict:
    """A stops-file entry that withdraws an earlier stop of ``reason``."""
    return {"reason": reason, "at": None}


def soonest_first(stops: list[UpcomingStop]) -> list[UpcomingStop]:
    return sorted(stops, key=lambda s: s.at)


#: why, in words, completing "…will be stopped at 14:05 UTC (in 12 min) because …"
REASON_WORDS = {
    "max_runtime": "its maximum run time ends",
    "quota": "the GPU quota runs out",
    "idle": "it is idle (no Jupyter activity and no GPU use)",
}


@dataclass(frozen=True)
class StopNote:
    reason: str
    text: str


def stop_sentence(subject: str, stop: UpcomingStop, now: float) -> str:
    """``Your server will be stopped at 14:05 UTC (in 12 min) because …. Save your work.``"""
    left = max(0, round((stop.at - now) / 60))
    when = time.strftime("%H:%M UTC", time.gmtime(stop.at))
    why = stop.message or REASON_WORDS.get(stop.reason, stop.reason)
    return f"{subject} will be stopped at {when} (in {left} min) because {why}. Save your work."
