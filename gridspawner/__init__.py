"""gridspawner: a JupyterHub spawner that launches GPU servers on Kubernetes, SSH hosts or the hub's machine."""

from .spawner import GridSpawner

__all__ = ["GridSpawner"]
__version__ = "0.1.0"
