"""PURE: the command a run executes and the files it needs, as a `BatchJob`.

The parameters travel as a file (``parameters.json``, read by papermill's ``-f``, JSON
being YAML): no value is ever formatted into shell text or an argv of its own.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..backends.base import BatchJob
from .params import parameters_json

INPUT = "input.ipynb"
OUTPUT = "output.ipynb"
PARAMETERS = "parameters.json"
#: the exit status a host job reports when its command is not found (sh's)
EXIT_NOT_FOUND = 127


def papermill_argv(kernel: str = "") -> tuple[str, ...]:
    """papermill's argv: the notebook's cells' output goes to the log as they run."""
    argv = ["papermill", INPUT, OUTPUT, "-f", PARAMETERS, "--log-output", "--no-progress-bar",
            "--request-save-on-cell-execute"]
    if kernel:
        argv += ["--kernel", kernel]
    return tuple(argv)


def batch_job(run_id: str, notebook: bytes, parameters: Mapping[str, Any], kernel: str = "") -> BatchJob:
    """The job of run ``run_id``: papermill on ``notebook`` with ``parameters``."""
    return BatchJob(
        run_id=run_id,
        argv=papermill_argv(kernel),
        files={INPUT: notebook, PARAMETERS: parameters_json(parameters)},
        outputs=(OUTPUT,),
        env={"PYTHONUNBUFFERED": "1"},
    )
