"""How notebook runs read on the service's pages: pure formatting of the runs API's run JSON
(see ``runs_api``) into table rows, and the executed notebook as sandboxed HTML.

The results page and its live updates render rows with the same template macro from these
dicts (one renderer: the script only swaps rows the server rendered)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from ..backends.base import Capacity
from .views import duration, hours, when

#: a run's status → (the words the page uses, the badge's Bootstrap class)
STATUS = {
    "queued": ("queued", "text-bg-secondary"),
    "preparing": ("preparing", "text-bg-light border"),
    "running": ("running", "text-bg-info"),
    "succeeded": ("succeeded", "text-bg-success"),
    "failed": ("failed", "text-bg-danger"),
    "cancelled": ("cancelled", "text-bg-warning"),
    "timed_out": ("timed out", "text-bg-danger"),
}
#: statuses a run can still leave (cancel offered; delete refused by the API)
ACTIVE = ("queued", "preparing", "running")
#: the stderr tail shown for a failed run, in lines (the API's log_tail may hold more)
LOG_TAIL_LINES = 40
#: headers of the executed notebook's HTML view: the browser treats it as a sandboxed
#: document of an opaque origin (no ``allow-same-origin``, no ``allow-scripts``), so nothing in
#: a notebook's outputs runs script or reads the service's cookies; it loads nothing but its
#: own inline styles and data: images
HTML_VIEW_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                               "font-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Type": "text/html; charset=utf-8",
}


def cancelling(run: Mapping[str, Any]) -> bool:
    """Whether the run was asked to stop and has not yet (its process or pod is stopping)."""
    return bool(run.get("cancel_requested")) and run.get("status") in ACTIVE


def status_text(run: Mapping[str, Any]) -> str:
    """``queued (position 3)``, ``running``, ``timed out``, ``cancelling``."""
    status = str(run.get("status") or "")
    if cancelling(run):
        return "cancelling"
    text = STATUS.get(status, (status, ""))[0]
    position = run.get("queue_position")
    if status == "queued" and isinstance(position, int) and position > 0:
        text += f" (position {position})"
    return text


def run_gpu_text(gpus: Any) -> str:
    """The run JSON's ``gpus`` (``{count, model, vram}``) as ``2 × NVIDIA A100 (80 GB)``,
    ``1 GPU (≥ 16 GB)`` before placement, ``none``."""
    if not isinstance(gpus, Mapping):
        return "none"
    n = gpus.get("count") or 0
    if not n:
        return "none"
    model = gpus.get("model") or ""
    gb = gpus.get("vram") or 0
    if " + " in model:  # GPUs of different models: "4 GPUs (A + B)"
        return f"{n} GPUs ({model})"
    size = f" ({gb:g} GB)" if gb and model else (f" (≥ {gb:g} GB)" if gb else "")
    return f"{n} × {model}{size}" if model else f"{n} GPU{'s' if n != 1 else ''}{size}"


def where_text(run: Mapping[str, Any]) -> str:
    backend, host = run.get("backend") or "", run.get("host") or ""
    return f"{backend} · {host}" if backend and host else (backend or host)


def _tail(text: Any, lines: int = LOG_TAIL_LINES) -> str:
    if not text:
        return ""
    return "\n".join(str(text).rstrip("\n").splitlines()[-lines:])


def failure(run: Mapping[str, Any]) -> dict[str, Any] | None:
    """What a failed (or timed-out) run shows: the failing cell, the error and the stderr tail."""
    if run.get("status") not in ("failed", "timed_out"):
        return None
    error = run.get("error") if isinstance(run.get("error"), Mapping) else {}
    cell = error.get("cell_index")
    return {
        "cell": f"cell {cell + 1}" if isinstance(cell, int) and not isinstance(cell, bool) else "",
        "ename": str(error.get("ename") or ""),
        "evalue": str(error.get("evalue") or ""),
        # why, where no cell failed (timed out, no papermill in the image, lost)
        "message": "" if error.get("ename") else str(error.get("message") or ""),
        "source": str(error.get("source") or ""),
        "log_tail": _tail(run.get("log_tail")),
    }


#: the longest failing-cell source shown, in characters
MAX_SOURCE = 2000


def cell_source(notebook: bytes | None, index: Any) -> str:
    """The source of cell ``index`` of a submitted notebook ("" when there is none)."""
    if not notebook or not isinstance(index, int) or isinstance(index, bool) or index < 0:
        return ""
    try:
        cells = json.loads(notebook).get("cells") or []
        source = cells[index].get("source", "")
    except (ValueError, AttributeError, IndexError, TypeError):
        return ""
    text = "".join(source) if isinstance(source, list) else str(source)
    return text if len(text) <= MAX_SOURCE else text[: MAX_SOURCE - 1] + "…"


def run_row(run: Mapping[str, Any], tz: ZoneInfo, prefix: str, now: float, output: bool | None = None) -> dict[str, Any]:
    """A run (the API's JSON) as a row of the results page; ``output``: whether its executed
    notebook is there to view and download (None: a finished run that started has one)."""
    status = str(run.get("status") or "")
    started, finished = run.get("started"), run.get("finished")
    secs = run.get("duration")
    if secs is None and started is not None:
        secs = (finished if finished is not None else now) - started
    run_id = str(run.get("id"))
    params = run.get("parameters") if isinstance(run.get("parameters"), Mapping) else {}
    return {
        "id": run_id,
        "name": str(run.get("name") or "") or f"run {run_id}",
        "user": str(run.get("user") or ""),
        "status": status,
        "status_text": status_text(run),
        "message": str(run.get("message") or "") if status in ACTIVE else "",
        "badge": STATUS["cancelled"][1] if cancelling(run) else STATUS.get(status, ("", "text-bg-light"))[1],
        "active": status in ACTIVE,
        "cancelling": cancelling(run),
        "finished_ok": status == "succeeded",
        "has_output": status not in ACTIVE and (output if output is not None else run.get("started") is not None),
        "submitted": when(run.get("submitted"), tz),
        "started": when(started, tz),
        "finished": when(finished, tz),
        "where": where_text(run),
        "gpu_text": run_gpu_text(run.get("gpus")),
        "image": str(run.get("image") or ""),
        "profile": str(run.get("profile") or ""),
        "duration": duration(secs) if secs is not None else "",
        "gpu_hours": hours(run.get("gpu_hours")) if run.get("gpu_hours") is not None else "",
        "parameters": ", ".join(f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in params.items()),
        "warnings": [str(w) for w in run.get("warnings") or ()],
        "failure": failure(run),
        "urls": {
            "html": f"{prefix}runs/{run_id}/html",
            "notebook": f"{prefix}api/runs/{run_id}/notebook",
            "cancel": f"{prefix}api/runs/{run_id}/cancel",
            "delete": f"{prefix}api/runs/{run_id}",
            # the same, as plain form posts (pages without JavaScript: `runs_actions`)
            "cancel_form": f"{prefix}runs/{run_id}/cancel",
            "delete_form": f"{prefix}runs/{run_id}/delete",
        },
        "updated": run.get("updated"),
    }


def notebook_html(notebook: bytes | str, title: str) -> str:
    """The executed notebook as a standalone HTML page (nbconvert's ``lab`` template, with
    its styles inline): what ``runs/ID/html`` serves, under `HTML_VIEW_HEADERS`."""
    import nbformat
    from nbconvert import HTMLExporter

    text = notebook.decode("utf-8") if isinstance(notebook, bytes) else notebook
    nb = nbformat.reads(text, as_version=4)
    exporter = HTMLExporter(template_name="lab")
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    return body


@dataclass(frozen=True)
class QueueingCapacity(Capacity):
    """A backend's capacity as the submit page's form weighs it. A run whose GPUs are busy
    waits in the queue instead of failing, so the form offers every choice that fits the
    backend's hosts when idle (only what can never fit is refused) — while its capacity line
    and state still say what is free now (``now``)."""

    now: Capacity | None = None

    @property
    def free_gpus(self) -> int:
        return self.now.free_gpus if self.now is not None else super().free_gpus

    def summary(self) -> str:
        if self.now is None:
            return super().summary()
        text = self.now.summary()
        if self.now.known and self.now.total_gpus:
            text += "; a run waits in the queue until its GPUs are free"
        return text


def queueing_capacity(caps: Mapping[str, Capacity]) -> dict[str, Capacity]:
    """`QueueingCapacity` of every backend: its hosts with all their GPUs free."""
    return {name: QueueingCapacity(cap.backend, tuple(replace(h, free=frozenset(g.uuid for g in h.gpus))
                                                      for h in cap.hosts), cap.updated, cap.error, now=cap)
            for name, cap in caps.items()}
