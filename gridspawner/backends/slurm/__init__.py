"""The ``slurm`` backend kind: servers as Slurm batch jobs, submitted and reached through a
login node over SSH, and notebook runs as batch jobs (`batch`) (docs/admin/slurm-backend.md)."""

from .backend import SlurmBackend

__all__ = ["SlurmBackend"]
