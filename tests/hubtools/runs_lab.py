"""Helpers of the notebook-run labs (tests/integration/test_runs_*.py): a parameterised
notebook, a submit through the runs executor, and a wait for a run's status."""

from __future__ import annotations

import asyncio
import time

import nbformat

from gridspawner.runs.submit import build_draft


def notebook(body: str, params: str = "value = 1") -> bytes:
    """A Python notebook: a cell tagged ``parameters`` holding ``params``, then ``body``."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nbformat.writes(nb).encode()


async def submit(runs, nb: bytes, params=None, gpus=1, user="alice", **options) -> str:
    """Submit ``nb`` as ``user`` (no groups) to the `RunsRuntime` ``runs``; returns the run id."""
    draft = build_draft({"notebook": nb, "options": {"gpus": gpus, **options}, "parameters": params or {}},
                        runs.catalog, [], user)
    return await runs.submit(draft, user, [])


async def wait(runs, run_id: str, statuses, timeout: float, interval: float = 0.1) -> dict:
    """The run's row once its status is one of ``statuses`` (AssertionError after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = await runs.store.get(run_id)
        if row["status"] in statuses:
            return row
        await asyncio.sleep(interval)
    raise AssertionError(f"run {run_id} still {row['status']} after {timeout} s: {row}")
