"""PURE: how a finished run ended — its status and, when it failed, the failing cell and
error read from the executed notebook (papermill marks the cell that raised, and the cell's
``error`` output holds ``ename`` / ``evalue``), else the log's last words."""

from __future__ import annotations

import json
from typing import Any

from .papermill_cmd import EXIT_NOT_FOUND

#: cells papermill adds to the executed notebook (not counted in a cell's index)
ADDED_TAGS = ("injected-parameters", "papermill-error-cell-tag")
#: characters of the log kept in the database (the run store keeps the whole tail)
LOG_TAIL_DB = 16 * 1024


def notebook_error(output: bytes | None) -> dict | None:
    """{cell_index, ename, evalue} of the executed notebook's failing cell (the index counts
    the submitted notebook's cells: the cells papermill added are skipped); None when none."""
    if not output:
        return None
    try:
        nb = json.loads(output)
    except ValueError:
        return None
    index = -1
    for cell in nb.get("cells") or ():
        if not isinstance(cell, dict):
            continue
        tags = (cell.get("metadata") or {}).get("tags") or ()
        if any(t in ADDED_TAGS for t in tags):
            continue
        index += 1
        meta = (cell.get("metadata") or {}).get("papermill") or {}
        errors = [o for o in cell.get("outputs") or () if isinstance(o, dict) and o.get("output_type") == "error"]
        if meta.get("exception") or errors:
            e = errors[-1] if errors else {}
            return {"cell_index": index, "ename": str(e.get("ename", "")), "evalue": str(e.get("evalue", ""))}
    return None


def last_line(log: str) -> str:
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""


def judge(exit_code: int | None, output: bytes | None, log: str, image: str, *, cancelled: bool = False,
          timed_out: bool = False, lost: str = "", quota: str = "") -> tuple[str, dict | None]:
    """(status, error) of a run that ended. ``quota``: why the GPU quota stopped it (failed)."""
    if cancelled:
        return "cancelled", None
    if quota:
        return "failed", {"cell_index": None, "ename": "", "evalue": "", "message": quota}
    if timed_out:
        return "timed_out", {"cell_index": None, "ename": "", "evalue": "",
                             "message": "the run took longer than its maximum run time and was stopped"}
    if exit_code == 0:
        return "succeeded", None
    err = notebook_error(output)
    if err is not None:
        return "failed", {**err, "message": f"cell {err['cell_index']} raised {err['ename']}: {err['evalue']}"}
    if exit_code == EXIT_NOT_FOUND and not output:
        message = f"the image {image!r} cannot run notebooks: it needs papermill and ipykernel"
    elif lost:
        message = lost
    elif exit_code is None or exit_code < 0:
        message = "the run was lost (its process ended without an exit code)"
    else:
        message = f"papermill exited with status {exit_code}: {last_line(log)}"
    return "failed", {"cell_index": None, "ename": "", "evalue": "", "message": message}


def db_tail(log: str) -> str:
    return log[-LOG_TAIL_DB:]


def as_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)
