"""``kind: kubernetes``: single-user servers as pods on a (GPU) cluster, via kubernetes_asyncio.

- ``settings``  the backend's and an image's settings, validated at hub start-up;
- ``objects``   PURE builders of the pod, Secret and home claim (plain dicts); the pod here,
  the rest by topic in ``names``, ``gpu_scheduling``, ``secrets_and_volumes``, ``pod_status``;
- ``api``       one API call as JSON, retried with bounded backoff;
- ``watch``     shared list+watch caches (pods, their events, nodes);
- ``capacity``  free GPUs per node from the node and pod watches;
- ``backend``   `KubernetesBackend`, which ties them together: the Backend protocol,
  composed of parts that each own their state (``connection``, ``cluster_watches``,
  ``secret_cleanup``, ``server_cleanup``, ``home_volume``, ``readiness``,
  ``pod_reconcile``, ``in_flight``; and the pure ``gpu_fit``).
"""

from .backend import KubernetesBackend
from .settings import GPUType, HomeVolume, KubernetesImage, KubernetesSettings

__all__ = ["GPUType", "HomeVolume", "KubernetesBackend", "KubernetesImage", "KubernetesSettings"]
