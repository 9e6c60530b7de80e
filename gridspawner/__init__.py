"""gridspawner: a JupyterHub spawner that launches GPU servers on Kubernetes, SSH hosts or the hub's machine."""

from .spawner import GridSpawner
from .startup import check_running_hub

__all__ = ["GridSpawner"]
_VERSION = "0.1.0"


def __getattr__(name: str):
    # JupyterHub reads the spawner package's __version__ right after loading its config
    # file; that is the one moment a spawner can validate the config at hub start-up.
    if name == "__version__":
        check_running_hub(GridSpawner)
        return _VERSION
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
