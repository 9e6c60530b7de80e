"""The stops a gridspawner server knows about, for the JupyterLab extension: pure functions.

Sources, read on every request so that a change reaches the browser at its next poll:

1. the environment gridspawner gives the server (``GRIDSPAWNER_DEADLINE``: the maximum run
   time's end, epoch seconds; ``GRIDSPAWNER_STOP_WARNINGS``: when to warn, seconds before a
   stop, e.g. ``1800,300``);
2. the *stops file* named by ``GRIDSPAWNER_STOPS_FILE`` (the hook through which the hub may
   later move the deadline or announce other stops — idle, quota), when it exists::

       {"stops": [{"reason": "max_runtime", "at": 1767225600},
                  {"reason": "idle", "at": 1767222000, "message": "it has been idle for 2 h"}]}

   Each entry replaces the environment's stop of the same ``reason``; ``"at": null`` cancels
   it. ``message`` (optional) says why, in words for the user; ``warn_before`` (optional, a
   list of seconds) replaces the warning times for that stop.

This package must not import gridspawner (images install it alone), so the variable names
are spelled here again; gridspawner's ``server_env`` module is their source.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

DEADLINE = "GRIDSPAWNER_DEADLINE"
STOP_WARNINGS = "GRIDSPAWNER_STOP_WARNINGS"
STOPS_FILE = "GRIDSPAWNER_STOPS_FILE"
POLL_SECONDS = "GRIDSPAWNER_LAB_POLL_SECONDS"

MAX_RUNTIME = "max_runtime"
DEFAULT_WARNINGS = (1800, 300)
DEFAULT_POLL_SECONDS = 60
MIN_POLL_SECONDS = 1
#: a stops file larger than this is not read (it holds a few entries)
MAX_FILE_BYTES = 64 * 1024
_MAX_TEXT = 500


class StopsFileError(ValueError):
    """The stops file is not in the documented format (the message says where)."""


@dataclass(frozen=True)
class Stop:
    """One upcoming stop: why (``reason``: ``max_runtime``, ``idle``, ``quota``, …) and when
    (``at``: epoch seconds)."""

    reason: str
    at: float
    message: str = ""
    warn_before: tuple[int, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reason": self.reason, "at": self.at}
        if self.message:
            out["message"] = self.message
        if self.warn_before is not None:
            out["warn_before"] = list(self.warn_before)
        return out


def _seconds_list(text: str) -> tuple[int, ...] | None:
    """``"1800,300"`` → (1800, 300), longest first; None when it is not such a list."""
    try:
        values = {int(float(part)) for part in text.split(",") if part.strip()}
    except ValueError:
        return None
    if any(v <= 0 for v in values):
        return None
    return tuple(sorted(values, reverse=True))


def warnings_from_env(environ: Mapping[str, str]) -> tuple[int, ...]:
    """The warning times (seconds before a stop), longest first; the default (30 and 5
    minutes) when the variable is unset or not a list of positive numbers. Empty: none."""
    text = environ.get(STOP_WARNINGS)
    if text is None:
        return DEFAULT_WARNINGS
    if not text.strip():
        return ()
    parsed = _seconds_list(text)
    return DEFAULT_WARNINGS if parsed is None else parsed


def poll_seconds_from_env(environ: Mapping[str, str]) -> int:
    """How often the browser asks again (``GRIDSPAWNER_LAB_POLL_SECONDS``, default 60)."""
    try:
        value = int(float(environ.get(POLL_SECONDS, DEFAULT_POLL_SECONDS)))
    except ValueError:
        return DEFAULT_POLL_SECONDS
    return max(MIN_POLL_SECONDS, value)


def env_stops(environ: Mapping[str, str]) -> dict[str, Stop]:
    """The stops the environment announces, by reason (only the maximum run time today)."""
    text = (environ.get(DEADLINE) or "").strip()
    if not text:
        return {}
    try:
        at = float(text)
    except ValueError:
        return {}
    return {MAX_RUNTIME: Stop(MAX_RUNTIME, at)} if math.isfinite(at) else {}


def parse_stops_file(text: str) -> dict[str, Stop | None]:
    """The stops file's entries by reason (None: that reason's stop is cancelled)."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise StopsFileError(f"not JSON: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("stops"), list):
        raise StopsFileError('must be an object with a "stops" list')
    out: dict[str, Stop | None] = {}
    for i, entry in enumerate(data["stops"]):
        where = f"stops[{i}]"
        if not isinstance(entry, dict):
            raise StopsFileError(f"{where} must be an object")
        reason, at = entry.get("reason"), entry.get("at")
        if not isinstance(reason, str) or not reason or len(reason) > 64:
            raise StopsFileError(f"{where}.reason must be a short string")
        if at is None:
            out[reason] = None
            continue
        if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
            raise StopsFileError(f"{where}.at must be epoch seconds or null")
        message = entry.get("message", "")
        if not isinstance(message, str):
            raise StopsFileError(f"{where}.message must be a string")
        warn = entry.get("warn_before")
        warn_before = None
        if warn is not None:
            if not isinstance(warn, list) or not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in warn):
                raise StopsFileError(f"{where}.warn_before must be a list of seconds")
            warn_before = _seconds_list(",".join(str(w) for w in warn))
            if warn_before is None:
                raise StopsFileError(f"{where}.warn_before must hold positive seconds")
        out[reason] = Stop(reason, float(at), message[:_MAX_TEXT], warn_before)
    return out


def merge(from_env: Mapping[str, Stop], from_file: Mapping[str, Stop | None]) -> list[Stop]:
    """The file's entries over the environment's, soonest first."""
    merged: dict[str, Stop | None] = {**from_env, **from_file}
    return sorted((s for s in merged.values() if s is not None), key=lambda s: (s.at, s.reason))


def payload(environ: Mapping[str, str], now: float, file_text: str | None = None) -> tuple[dict, str | None]:
    """What ``GET …/gridspawner/stops`` answers, and a problem with the stops file to log
    (None: none). ``file_text``: the stops file's content, None when there is none.

    ``now`` (the server's clock) lets the browser measure time left on the server's clock,
    whatever its own says.
    """
    problem = None
    from_file: dict[str, Stop | None] = {}
    if file_text is not None and file_text.strip():
        try:
            from_file = parse_stops_file(file_text)
        except StopsFileError as e:
            problem = f"ignoring the stops file {environ.get(STOPS_FILE)}: {e}"
    stops = merge(env_stops(environ), from_file)
    return {
        "now": now,
        "stops": [s.to_json() for s in stops],
        "warn_before": list(warnings_from_env(environ)),
        "poll_seconds": poll_seconds_from_env(environ),
    }, problem
