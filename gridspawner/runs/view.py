"""PURE: a run's row → the JSON the REST API and the pages show."""

from __future__ import annotations

import json
from typing import Any, Mapping

#: the states of a run that is not over
ACTIVE = ("queued", "preparing", "running")
FINAL = ("succeeded", "failed", "cancelled", "timed_out")


def _json(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def duration(row: Mapping, now: float) -> float | None:
    """Seconds it ran (so far, while running)."""
    if row.get("started_at") is None:
        return None
    return max(0.0, (row.get("finished_at") or now) - row["started_at"])


def run_json(row: Mapping, now: float, position: int | None = None) -> dict:
    """The run as the API answers it (``position``: its place in its backend's queue, 1 =
    next; None unless queued)."""
    took = duration(row, now)
    gpus = int(row.get("gpus") or 0)
    return {
        "id": row["id"],
        "name": row.get("name") or "",
        "user": row["username"],
        "status": row["status"],
        "queue_position": position if row["status"] == "queued" else None,
        # what an active run waits for, or a coming quota stop ("" when nothing)
        "message": (row.get("message") or "") if row["status"] in ACTIVE else "",
        "submitted": row["submitted_at"],
        "started": row.get("started_at"),
        "finished": row.get("finished_at"),
        "duration": took,
        "backend": row["backend"],
        "host": row.get("host") or "",
        "gpus": {"count": gpus, "model": row.get("gpu_model") or "", "vram": int(row.get("gpu_memory_gb") or 0)},
        "gpu_hours": round(gpus * (took or 0.0) / 3600.0, 6),
        "image": row.get("image") or "",
        "profile": row.get("profile") or "",
        "parameters": _json(row.get("parameters"), {}),
        "warnings": _json(row.get("warnings"), []),
        "error": _json(row.get("error"), None),
        "log_tail": row.get("log_tail") or "",
        "cancel_requested": bool(row.get("cancel_requested")),
        "updated": row["updated_at"],
    }


def positions(queued: list[Mapping]) -> dict[str, int]:
    """Queue positions from the queued rows in queue order (oldest first): per backend, 1 = next."""
    counts: dict[str, int] = {}
    out: dict[str, int] = {}
    for row in queued:
        counts[row["backend"]] = counts.get(row["backend"], 0) + 1
        out[row["id"]] = counts[row["backend"]]
    return out
