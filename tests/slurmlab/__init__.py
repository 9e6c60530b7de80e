"""A real Slurm cluster for tests (draft docstring)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # sibling test packages (sshhosts)

from .conf import GPU, NodeSpec, PartitionSpec  # noqa: E402
from .lab import SlurmLab, SubmitRefused, available  # noqa: E402

__all__ = ["GPU", "NodeSpec", "PartitionSpec", "SlurmLab", "SubmitRefused", "available"]
