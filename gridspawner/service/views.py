"""How usage reads on the pages and in exports: pure formatting of records and sums."""

from __future__ import annotations

from datetime import datetime
from typing import Mapping
from zoneinfo import ZoneInfo

from ..usage.pricing import format_money

#: what each stop reason means, in the words the pages use
REASON_TEXT = {
    "user": "stopped by you",
    "admin": "stopped by an admin",
    "max_runtime": "maximum run time reached",
    "idle": "idle",
    "quota": "GPU quota used up",
    "failure": "failed",
    "ended": "ended by itself",
    "hub_lost": "lost by the hub",
    "hub": "stopped by the hub",
}


def reason_text(reason: str | None, stopped_by: str | None = None, viewer: str | None = None) -> str:
    if reason is None:
        return "running"
    text = REASON_TEXT.get(reason, reason)
    if reason == "user" and viewer is not None and stopped_by and stopped_by != viewer:
        text = f"stopped by {stopped_by}"
    elif reason == "admin" and stopped_by:
        text = f"stopped by {stopped_by.removeprefix('service:')}" + (" (a service)" if stopped_by.startswith("service:") else "")
    return text


def when(epoch: float | None, tz: ZoneInfo) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, tz).strftime("%Y-%m-%d %H:%M")


def iso(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def duration(seconds: float) -> str:
    """``3 d 4 h``, ``2 h 05 min``, ``12 min``, ``40 s``."""
    seconds = max(0, int(seconds))
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    if d:
        return f"{d} d {h} h"
    if h:
        return f"{h} h {m:02d} min"
    if m:
        return f"{m} min"
    return f"{s} s"


def hours(value: float | None) -> str:
    return f"{(value or 0.0):,.2f}"


def gpu_text(record: Mapping) -> str:
    """``2 × NVIDIA A100-SXM4-80GB (80 GB)``, ``1 GPU (≥ 16 GB)``, ``none``."""
    n = record.get("gpus") or 0
    if not n:
        return "none"
    model = record.get("gpu_model") or ""
    gb = record.get("gpu_memory_gb") or 0
    size = f" ({gb} GB)" if gb and model else (f" (≥ {gb} GB)" if gb else "")
    return f"{n} × {model}{size}" if model else f"{n} GPU{'s' if n != 1 else ''}{size}"


def record_row(record: Mapping, now: float, tz: ZoneInfo, viewer: str | None = None) -> dict:
    """A record as a history table row (also the CSV export's columns)."""
    end = record["stopped_at"] if record["stopped_at"] is not None else now
    secs = max(0.0, end - record["started_at"])
    gpu_hours = (record.get("gpus") or 0) * secs / 3600.0
    cost = (record.get("price_per_hour") or 0.0) * secs / 3600.0
    return {
        "id": record["id"],
        "kind": record["kind"],
        "user": record["username"],
        "server": record.get("server_name") or "",
        "groups": ", ".join(record.get("groups") or ()),
        "backend": record["backend"],
        "host": record.get("host") or "",
        "gpus": record.get("gpus") or 0,
        "gpu_model": record.get("gpu_model") or "",
        "gpu_memory_gb": record.get("gpu_memory_gb") or 0,
        "gpu_text": gpu_text(record),
        "image": record.get("image") or "",
        "profile": record.get("profile") or "",
        "started": when(record["started_at"], tz),
        "stopped": when(record["stopped_at"], tz),
        "started_at": record["started_at"],
        "stopped_at": record["stopped_at"],
        "running": record["stopped_at"] is None,
        "duration": duration(secs),
        "hours": secs / 3600.0,
        "gpu_hours": gpu_hours,
        "cost": cost,
        "currency": record.get("currency") or "",
        "cost_text": format_money(cost, record.get("currency") or "") if record.get("price_per_hour") else "",
        "stop_reason": record.get("stop_reason") or "",
        "stopped_by": record.get("stopped_by") or "",
        "reason_text": reason_text(record.get("stop_reason"), record.get("stopped_by"), viewer),
    }


#: the CSV export of records: column → key of `record_row`
RECORD_COLUMNS = (
    ("id", "id"), ("kind", "kind"), ("user", "user"), ("server", "server"), ("groups", "groups"),
    ("backend", "backend"), ("host", "host"), ("gpus", "gpus"), ("gpu_model", "gpu_model"),
    ("gpu_memory_gb", "gpu_memory_gb"), ("image", "image"), ("profile", "profile"),
    ("started", "started_iso"), ("stopped", "stopped_iso"), ("hours", "hours"), ("gpu_hours", "gpu_hours"),
    ("cost", "cost"), ("currency", "currency"), ("stop_reason", "stop_reason"), ("stopped_by", "stopped_by"),
)

#: the CSV export of sums
SUMMARY_COLUMNS = ("key", "records", "hours", "gpu_hours", "cost", "currency")
