"""Start real JupyterHub + configurable-http-proxy processes for tests and benchmarks."""

from .hub import (
    FAKE_GPUS,
    FAKE_NVIDIA_SMI,
    FormSession,
    Hub,
    HubExited,
    default_grid_config,
    fake_gpus_spec,
    fake_nvidia_smi_command,
    local_backend_config,
)
from .ports import free_port
from . import procs

__all__ = [
    "FAKE_GPUS",
    "FAKE_NVIDIA_SMI",
    "FormSession",
    "Hub",
    "HubExited",
    "default_grid_config",
    "fake_gpus_spec",
    "fake_nvidia_smi_command",
    "free_port",
    "local_backend_config",
    "procs",
]
